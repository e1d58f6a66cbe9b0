"""/api/registries/ and the admin, on PostgreSQL and the stack's real registry: only platform
admins create, edit, check and delete; anyone signed in reads; the password is encrypted at
rest, never in a response, the admin or the audit log, and must be entered again to follow a
changed URL, CA or TLS setting; checks and tag lists say what went wrong."""
import socket

import pytest
from django.db import connection
from django.test import Client

from apps.audit.models import AuditEntry
from apps.registries.models import Registry

from .conftest import REPOSITORY, TAGS

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def viewer(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("vera", password="pw"))
    return client


@pytest.fixture
def stack_registry(admin_client, registry):
    response = admin_client.post("/api/registries/", {
        "name": "local", "kind": "oci", "url": registry.url, "username": registry.username,
        "password": registry.password}, content_type="application/json")
    assert response.status_code == 201, response.content
    return Registry.objects.get(pk=response.json()["id"])


def everything_stored() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM registries_registry")
        rows = repr(cursor.fetchall())
    return rows + repr(list(AuditEntry.objects.values()))


def test_the_password_is_encrypted_and_never_shown(admin_client, stack_registry, registry):
    body = admin_client.get(f"/api/registries/{stack_registry.pk}").json()
    assert body["has_password"] is True and "password" not in body
    listed = admin_client.get("/api/registries/").content.decode()
    page = admin_client.get(f"/admin/registries/registry/{stack_registry.pk}/change/")
    assert page.status_code == 200
    for shown in (repr(body), listed, page.content.decode(), everything_stored()):
        assert registry.password not in shown
    assert AuditEntry.objects.get(action="registry.created").details["password"] == "(set)"


def test_check_and_tags_with_the_stored_credentials(admin_client, stack_registry, images):
    checked = admin_client.post(f"/api/registries/{stack_registry.pk}/check")
    assert checked.json()["connection_status"] == "Successful", checked.content
    tags = admin_client.get(f"/api/registries/{stack_registry.pk}/tags",
                            {"repository": REPOSITORY})
    assert sorted(tags.json()["tags"]) == sorted(TAGS)
    assert admin_client.get(f"/api/registries/{stack_registry.pk}/tags").status_code == 400
    bad = admin_client.get(f"/api/registries/{stack_registry.pk}/tags", {"repository": "../x"})
    assert bad.status_code == 400 and "repository name" in bad.json()["detail"]
    missing = admin_client.get(f"/api/registries/{stack_registry.pk}/tags",
                               {"repository": "regtest/none"})
    assert missing.status_code == 404


def test_a_refused_password_is_stored_as_a_failed_check(admin_client, stack_registry, registry):
    wrong = "wrong-password-never-shown"
    assert admin_client.patch(f"/api/registries/{stack_registry.pk}", {"password": wrong},
                              content_type="application/json").status_code == 200
    checked = admin_client.post(f"/api/registries/{stack_registry.pk}/check")
    assert checked.json()["connection_status"] == "Failed"
    assert "refused the credentials" in checked.json()["connection_message"]
    stored = Registry.objects.get(pk=stack_registry.pk)
    assert stored.connection_status == "Failed" and "refused" in stored.connection_message
    tags = admin_client.get(f"/api/registries/{stack_registry.pk}/tags",
                            {"repository": REPOSITORY})
    assert tags.status_code == 502 and "refused the credentials" in tags.json()["detail"]
    for shown in (checked.content.decode(), tags.content.decode(), everything_stored()):
        assert wrong not in shown and registry.password not in shown


def test_a_registry_that_is_down_fails_its_check(admin_client):
    created = admin_client.post("/api/registries/", {
        "name": "down", "url": f"http://127.0.0.1:{closed_port()}", "username": "u",
        "password": "pw-down"}, content_type="application/json").json()
    checked = admin_client.post(f"/api/registries/{created['id']}/check").json()
    assert checked["connection_status"] == "Failed"
    assert "cannot reach" in checked["connection_message"]


def test_only_platform_admins_change_registries(viewer, admin_client, stack_registry):
    assert viewer.get("/api/registries/").status_code == 200
    detail = viewer.get(f"/api/registries/{stack_registry.pk}")
    assert detail.status_code == 200 and "password" not in detail.json()
    new = {"name": "mine", "url": "https://r.example.com", "password": "p"}
    assert viewer.post("/api/registries/", new, content_type="application/json").status_code == 403
    assert viewer.patch(f"/api/registries/{stack_registry.pk}", {"url": "https://evil.example"},
                        content_type="application/json").status_code == 403
    assert viewer.post(f"/api/registries/{stack_registry.pk}/check").status_code == 403
    assert viewer.delete(f"/api/registries/{stack_registry.pk}").status_code == 403
    assert viewer.get("/admin/registries/registry/add/").status_code in (302, 403)
    assert Client().get("/api/registries/").status_code in (401, 403)
    assert Registry.objects.get(pk=stack_registry.pk).url == stack_registry.url
    assert admin_client.delete(f"/api/registries/{stack_registry.pk}").status_code == 204
    assert AuditEntry.objects.filter(action="registry.deleted", object_name="local").exists()


@pytest.mark.parametrize("url, message", [
    ("https://user:pw@r.example.com", "credentials do not belong in the URL"),
    ("ftp://r.example.com", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("https://r.example.com/?x=1", "no query"),
])
def test_bad_urls_are_refused_with_the_cause(admin_client, url, message):
    response = admin_client.post("/api/registries/", {"name": "bad", "url": url},
                                 content_type="application/json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert "pw@" not in response.content.decode()


def test_a_ca_that_is_not_a_certificate_is_refused(admin_client):
    response = admin_client.post("/api/registries/", {
        "name": "ca", "url": "https://r.example.com", "ca_data": "hello"},
        content_type="application/json")
    assert response.status_code == 400 and "PEM" in response.json()["detail"]


@pytest.mark.parametrize("change, named", [
    ({"url": "https://elsewhere.example.com"}, "the URL"),
    ({"verify_tls": False}, "TLS verification"),
])
def test_the_password_follows_a_changed_address_only_when_sent_again(
        admin_client, stack_registry, registry, change, named):
    url = f"/api/registries/{stack_registry.pk}"
    refused = admin_client.patch(url, change, content_type="application/json")
    assert refused.status_code == 400
    assert f"changing {named}" in refused.json()["detail"]
    assert "requires the password again" in refused.json()["detail"]
    assert Registry.objects.get(pk=stack_registry.pk).url == registry.url
    accepted = admin_client.patch(url, {**change, "password": "new-pw"},
                                  content_type="application/json")
    assert accepted.status_code == 200, accepted.content
    assert Registry.objects.get(pk=stack_registry.pk).password == "new-pw"
    assert admin_client.patch(url, {"username": "other"},
                              content_type="application/json").status_code == 200
    assert Registry.objects.get(pk=stack_registry.pk).password == "new-pw"


def test_digest_of_an_image_reference(stack_registry, registry, images):
    from apps.registries import services
    from apps.registries.oci import InvalidReference, NotFound

    expected = images[f"{REPOSITORY}:2.0"]
    assert services.digest_of(stack_registry, f"{registry.host}/{REPOSITORY}:2.0") == expected
    assert services.digest_of(stack_registry, f"{REPOSITORY}:2.0") == expected
    assert services.digest_of(stack_registry, f"{REPOSITORY}@{expected}") == expected
    with pytest.raises(InvalidReference, match="not in registry local"):
        services.digest_of(stack_registry, f"quay.io/{REPOSITORY}:2.0")
    with pytest.raises(NotFound):
        services.digest_of(stack_registry, f"{REPOSITORY}:9.9")


def test_the_admin_keeps_the_password_unless_the_url_changes(admin_client, stack_registry,
                                                            registry):
    page = f"/admin/registries/registry/{stack_registry.pk}/change/"
    form = {"name": "local", "kind": "oci", "url": registry.url, "username": "renamed",
            "password": "", "verify_tls": "on", "ca_data": ""}
    assert admin_client.post(page, form).status_code == 302
    stored = Registry.objects.get(pk=stack_registry.pk)
    assert (stored.username, stored.password) == ("renamed", registry.password)
    moved = admin_client.post(page, {**form, "url": "https://elsewhere.example.com"})
    assert moved.status_code == 200 and "requires the password again" in moved.content.decode()
    assert registry.password not in moved.content.decode()
    assert Registry.objects.get(pk=stack_registry.pk).url == registry.url
