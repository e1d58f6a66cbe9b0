"""Login rate limiting (django-axes): too many failed sign-ins of one username from one address
lock that pair out for GITOPS_UI_LOGIN_LOCKOUT_MINUTES, on the login form and on the token
endpoint alike, with a message that says so; other addresses are not affected."""
import base64

import pytest
from django.conf import settings
from django.test import Client

from apps.audit.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture
def frank(django_user_model):
    return django_user_model.objects.create_user("frank", password="right-pw-123")


def test_the_login_form_locks_out_after_repeated_failures(frank):
    browser = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(LIMIT - 1):
        page = browser.post("/login/", {"username": "frank", "password": "wrong"})
        assert page.status_code == 200 and b"Too many failed" not in page.content
    locked = browser.post("/login/", {"username": "frank", "password": "wrong"})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins as frank" in locked.content
    assert b"15 minutes" in locked.content
    assert b'name="password"' in locked.content  # still the login page, with its form
    # Even the right password is refused now, from this address...
    again = browser.post("/login/", {"username": "frank", "password": "right-pw-123"})
    assert again.status_code == 429 and "_auth_user_id" not in browser.session
    # ...but not from another one.
    elsewhere = Client(REMOTE_ADDR="10.0.0.6")
    assert elsewhere.post("/login/", {"username": "frank",
                                      "password": "right-pw-123"}).status_code == 302
    failures = AuditEntry.objects.filter(action="auth.login_failed", object_name="frank")
    assert failures.count() == LIMIT + 1
    assert failures.filter(details__locked_out=True).count() >= 2
    assert set(failures.values_list("source_ip", flat=True)) == {"10.0.0.5"}


def test_the_token_endpoint_locks_out_too(frank):
    client = Client(REMOTE_ADDR="10.0.0.8")
    for _ in range(LIMIT - 1):
        assert client.post("/api/auth/token",
                           HTTP_AUTHORIZATION=basic("frank", "wrong")).status_code == 401
    locked = client.post("/api/auth/token", HTTP_AUTHORIZATION=basic("frank", "wrong"))
    assert locked.status_code == 429
    assert "Too many failed sign-ins as frank" in locked.json()["detail"]
    right = client.post("/api/auth/token", HTTP_AUTHORIZATION=basic("frank", "right-pw-123"))
    assert right.status_code == 429 and "token" not in right.json()
    # The login form from the same address shares the count.
    assert Client(REMOTE_ADDR="10.0.0.8").post(
        "/login/", {"username": "frank", "password": "right-pw-123"}).status_code == 429
    assert Client(REMOTE_ADDR="10.0.0.9").post(
        "/api/auth/token", HTTP_AUTHORIZATION=basic("frank", "right-pw-123")).status_code == 200


def test_a_success_before_the_limit_resets_the_count(frank):
    browser = Client(REMOTE_ADDR="10.0.0.11")
    for _ in range(LIMIT - 1):
        browser.post("/login/", {"username": "frank", "password": "wrong"})
    assert browser.post("/login/", {"username": "frank",
                                    "password": "right-pw-123"}).status_code == 302
    browser.post("/logout/")
    for _ in range(LIMIT - 1):
        assert browser.post("/login/", {"username": "frank",
                                        "password": "wrong"}).status_code == 200


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("env, secure, proxy_header", [
    ({}, False, None),
    ({"GITOPS_UI_TLS": "true"}, True, None),
    ({"GITOPS_UI_TLS": "true", "GITOPS_UI_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, True,
     ["HTTP_X_FORWARDED_PROTO", "https"]),
])
def test_cookies_are_secure_behind_tls_and_the_proxy_header_is_believed_only_if_named(
        env, secure, proxy_header, tmp_path):
    import json
    import os
    import subprocess
    import sys

    script = ("import json, django; django.setup(); from django.conf import settings as s; "
              "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
              "getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("GITOPS_UI_TLS", "GITOPS_UI_SECURE_COOKIES", "GITOPS_UI_PROXY_SSL_HEADER")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=settings.BASE_DIR,
                         env={**clean, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings",
                              "GITOPS_UI_DATA_DIR": str(tmp_path), **env})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [secure, secure, proxy_header]
