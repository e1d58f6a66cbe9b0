"""API tokens: created with a password or a session, stored hashed, revocable; 401 without."""
import pytest
from django.db import connection
from knox.models import AuthToken

pytestmark = pytest.mark.django_db


def test_unauthenticated_api_requests_get_401_with_a_challenge(client, world):
    response = client.get("/api/applications/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert "detail" in response.json()


def test_a_token_from_username_and_password_works_until_revoked(client, django_user_model, world):
    django_user_model.objects.create_user("alice", password="correct horse battery")
    wrong = client.post("/api/auth/token", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    assert wrong.status_code == 401
    created = client.post("/api/auth/token", HTTP_AUTHORIZATION=basic("alice", "correct horse battery"))
    assert created.status_code == 200, created.content
    token = created.json()["token"]
    assert created.json()["expiry"]
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.get("/api/applications/", **auth).status_code == 200  # sees no app: no role
    with connection.cursor() as cursor:  # only a hash is stored
        cursor.execute("SELECT digest, token_key FROM knox_authtoken")
        digest, key = cursor.fetchone()
    assert token not in digest and len(key) < len(token)
    assert client.post("/api/auth/token/revoke", **auth).status_code == 204
    assert client.get("/api/applications/", **auth).status_code == 401


def test_the_admin_lists_token_hashes_only(admin_client, admin_user):
    _, token = AuthToken.objects.create(user=admin_user)
    page = admin_client.get("/admin/knox/authtoken/")
    assert page.status_code == 200
    assert token.encode() not in page.content


def test_create_api_token_command_prints_a_working_token(client, admin_user, capsys):
    from django.core.management import call_command

    call_command("create_api_token", admin_user.username)
    token = capsys.readouterr().out.strip()
    assert client.get("/api/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_the_default_project_exists_from_the_first_migration(db):
    from apps.applications.models import Project

    default = Project.objects.get(name="default")
    assert default.source_repos == [] and default.destinations == []


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_an_expired_token_is_refused_and_the_hourly_sweep_deletes_the_others(client, admin_user):
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts import authentication

    _, live = AuthToken.objects.create(user=admin_user, expiry=timedelta(days=1))
    expired, old = AuthToken.objects.create(user=admin_user, expiry=timedelta(days=1))
    other, _ = AuthToken.objects.create(user=admin_user, expiry=timedelta(days=1))
    AuthToken.objects.filter(pk__in=[expired.pk, other.pk]).update(
        expiry=timezone.now() - timedelta(minutes=1))
    assert client.get("/api/", HTTP_AUTHORIZATION=f"Token {old}").status_code == 401
    assert not AuthToken.objects.filter(pk=expired.pk).exists()
    # Using the live token no longer sweeps the user's other tokens; the reconciler does.
    assert client.get("/api/", HTTP_AUTHORIZATION=f"Token {live}").status_code == 200
    assert AuthToken.objects.filter(pk=other.pk).exists()
    assert authentication.delete_expired() == 1
    assert AuthToken.objects.filter(user=admin_user).count() == 1  # the live one is left
