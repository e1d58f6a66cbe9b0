"""Passwords outside the Django admin, through Django's test client on PostgreSQL: a user
changes their own on /account/password/ with the old one and stays signed in; a platform admin
sets another user's on the user's page. Field errors name the cause, no typed password comes
back in a page, other sessions end, and the audit log says only that the password changed."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.audit.models import AuditEntry
from tests.audit.conftest import client_for, team, world  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db

User = get_user_model()
OLD = "pw-viewer"  # tests/audit/conftest.py's team
NEW = "Heron-lantern-8830"


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", password="root-pw-77")


def signed_in(username: str, password: str) -> Client | None:
    """A client signed in through the login form, or None when the form refuses."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": password})
    return client if response.status_code == 302 else None


def is_signed_in(client: Client) -> bool:
    return client.get("/account/password/").status_code == 200  # else 302 to the login page


def audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values()), default=str)


def test_a_user_changes_their_own_password_and_stays_signed_in(team):  # noqa: F811
    browser, elsewhere = signed_in("viewer", OLD), signed_in("viewer", OLD)
    page = browser.get("/projects/").content.decode()
    assert 'href="/account/password/"' in page  # in the user menu

    form = browser.get("/account/password/").content.decode()
    assert 'name="old_password"' in form and 'name="new_password1"' in form
    response = browser.post("/account/password/", {
        "old_password": OLD, "new_password1": NEW, "new_password2": NEW}, follow=True)
    assert response.status_code == 200
    assert "Password changed" in response.content.decode()
    assert NEW not in response.content.decode()

    assert is_signed_in(browser)  # this session was kept
    assert not is_signed_in(elsewhere)  # any other one ended
    assert signed_in("viewer", NEW) and signed_in("viewer", OLD) is None

    entry = AuditEntry.objects.get(action="user.updated", object_name="viewer")
    assert entry.actor_name == "viewer" and entry.details == {"changed": {"password": "(changed)"}}
    viewer = User.objects.get(username="viewer")
    text = audit_text()
    assert NEW not in text and OLD not in text and viewer.password not in text


def test_a_wrong_old_password_or_a_weak_new_one_shows_field_errors_and_changes_nothing(team):  # noqa: F811
    browser = client_for(team["viewer"])
    wrong = browser.post("/account/password/", {
        "old_password": "not-my-password", "new_password1": NEW, "new_password2": NEW})
    assert wrong.status_code == 400
    html = wrong.content.decode()
    assert "entered incorrectly" in html.split('id="old_password-errors"')[1].split("</ul>")[0]
    assert NEW not in html and "not-my-password" not in html  # nothing typed comes back

    weak = browser.post("/account/password/", {
        "old_password": OLD, "new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 400
    html = weak.content.decode()
    errors = html.split('id="new_password2-errors"')[1].split("</ul>")[0]
    assert "too common" in errors and "entirely numeric" in errors
    assert OLD not in html and "12345678" not in html

    mismatch = browser.post("/account/password/", {
        "old_password": OLD, "new_password1": NEW, "new_password2": NEW + "x"})
    assert "didn’t match" in mismatch.content.decode().split('id="new_password2-errors"')[1]

    assert signed_in("viewer", OLD) and signed_in("viewer", NEW) is None
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()
    assert Client().get("/account/password/").status_code == 302  # signed out: to the login page


def test_an_admin_sets_another_users_password_on_the_user_page(team, root):  # noqa: F811
    viewer_session = signed_in("viewer", OLD)
    admin = client_for(root)
    page = admin.get("/users/viewer/").content.decode()
    assert 'action="/users/viewer/password/"' in page and 'name="new_password1"' in page

    weak = admin.post("/users/viewer/password/",
                      {"new_password1": "viewer-1", "new_password2": "viewer-1"})
    assert weak.status_code == 400
    html = weak.content.decode()
    errors = html.split('id="new_password2-errors"')[1].split("</ul>")[0]
    assert "too similar to the username" in errors
    assert "viewer-1" not in html
    assert signed_in("viewer", OLD)

    response = admin.post("/users/viewer/password/", {"new_password1": NEW, "new_password2": NEW},
                          follow=True)
    assert "Set a new password for viewer" in response.content.decode()
    assert NEW not in response.content.decode()
    assert signed_in("viewer", NEW) and signed_in("viewer", OLD) is None
    assert not is_signed_in(viewer_session)  # the viewer's open session ended
    assert is_signed_in(admin)
    entry = AuditEntry.objects.get(action="user.updated", object_name="viewer")
    assert entry.actor_name == "root" and entry.details == {"changed": {"password": "(changed)"}}
    assert NEW not in audit_text()


def test_an_admins_own_password_is_changed_with_the_old_one(root):
    admin = client_for(root)
    page = admin.get("/users/root/").content.decode()
    assert 'action="/users/root/password/"' not in page and 'href="/account/password/"' in page
    response = admin.post("/users/root/password/", {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302 and response["Location"] == "/account/password/"
    root.refresh_from_db()
    assert root.check_password("root-pw-77")


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_platform_admins_set_another_users_password(team, role):  # noqa: F811
    client = client_for(team[role])
    response = client.post("/users/outsider/password/", {"new_password1": NEW, "new_password2": NEW})
    # The page names what was refused (apps.core.middleware.RefusalAs403).
    assert response.status_code == 403
    assert f"{role} may not change user" in response.content.decode()
    assert client.get("/users/").status_code == 403
    assert f"{role} may not view user" in client.get("/users/").content.decode()
    assert signed_in("outsider", "pw-outsider") and signed_in("outsider", NEW) is None
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()
