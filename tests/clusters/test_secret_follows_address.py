"""A stored password or token is never sent to a changed address unless it is entered again:
changing a repository's URL, or a cluster's server, CA or TLS verification, without the secret
is refused in the API and the admin, and changes nothing. On PostgreSQL."""
import pytest

from apps.clusters.models import Cluster
from apps.repositories.models import Repository

from .conftest import kubeconfig

pytestmark = pytest.mark.django_db

TOKEN = "tok-71c0-never-shown"
PASSWORD = "pw-0d5e-never-shown"
URL = "https://git.example.com/team/deploy.git"
SERVER = "https://127.0.0.1:1"  # nothing listens: checks fail, the token goes nowhere


def patch(client, url, body):
    return client.patch(url, body, content_type="application/json")


def admin_cluster_form(cluster, **changes):
    data = {"name": cluster.name, "auth": cluster.auth, "server": cluster.server, "token": "",
            "kubeconfig": "", "ca_data": cluster.ca_data}
    if cluster.insecure:
        data["insecure"] = "on"
    return {**data, **changes}


@pytest.fixture
def cluster(db):
    return Cluster.objects.create(name="prod", server=SERVER, token=TOKEN)


@pytest.fixture
def repo(db):
    return Repository.objects.create(url=URL, username="deploy", password=PASSWORD)


@pytest.mark.parametrize("change, named", [
    ({"server": "https://attacker.example:6443"}, "the server"),
    ({"ca_data": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}, "the CA"),
    ({"insecure": True}, "insecure"),
])
def test_api_cluster_address_change_needs_the_token_again(admin_client, cluster, listener,
                                                          change, named):
    refused = patch(admin_client, f"/api/clusters/{cluster.pk}", change)
    assert refused.status_code == 400
    assert f"changing {named}" in refused.json()["detail"]
    assert "requires the token again" in refused.json()["detail"]
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.server, stored.ca_data, stored.insecure, stored.token) == (SERVER, "", False,
                                                                              TOKEN)

    accepted = patch(admin_client, f"/api/clusters/{cluster.pk}", {**change, "token": TOKEN + "2"})
    assert accepted.status_code == 200, accepted.content
    stored = Cluster.objects.get(pk=cluster.pk)
    assert stored.token == TOKEN + "2"
    assert all(getattr(stored, key) == value for key, value in change.items())


def test_a_refused_server_change_sends_the_token_nowhere(admin_client, cluster, listener):
    refused = patch(admin_client, f"/api/clusters/{cluster.pk}", {"server": listener.url})
    assert refused.status_code == 400
    check = admin_client.post(f"/api/clusters/{cluster.pk}/check")
    assert check.json()["connection_status"] == "Failed"  # still the old, closed address
    assert listener.connections == 0


def test_api_cluster_edits_that_keep_the_address_keep_the_token(admin_client, cluster):
    Cluster.objects.filter(pk=cluster.pk).update(insecure=True)
    for body in ({"name": "prod-eu"}, {"insecure": False}, {"server": SERVER}):
        response = patch(admin_client, f"/api/clusters/{cluster.pk}", body)
        assert response.status_code == 200, (body, response.content)
    assert Cluster.objects.get(pk=cluster.pk).token == TOKEN


def test_a_kubeconfig_cluster_moves_by_sending_a_new_kubeconfig(admin_client):
    first = kubeconfig("https://127.0.0.1:1", {"token": TOKEN})
    created = admin_client.post("/api/clusters/", {"name": "kc", "auth": "kubeconfig",
                                                   "kubeconfig": first},
                                content_type="application/json")
    assert created.status_code == 201, created.content
    moved = kubeconfig("https://127.0.0.1:2", {"token": TOKEN})
    response = patch(admin_client, f"/api/clusters/{created.json()['id']}", {"kubeconfig": moved})
    assert response.status_code == 200, response.content
    assert Cluster.objects.get(name="kc").kubeconfig == moved


def test_admin_cluster_server_change_needs_the_token_again(admin_client, cluster):
    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    refused = admin_client.post(url, admin_cluster_form(cluster, server="https://attacker.example"))
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "changing the server requires the token again" in errors["token"]
    assert Cluster.objects.get(pk=cluster.pk).server == SERVER
    assert TOKEN.encode() not in refused.content

    refused = admin_client.post(url, admin_cluster_form(cluster, insecure="on"))
    assert "requires the token again" in " ".join(refused.context["adminform"].form.errors["token"])
    assert Cluster.objects.get(pk=cluster.pk).insecure is False

    kept = admin_client.post(url, admin_cluster_form(cluster, name="prod-2"))
    assert kept.status_code == 302
    accepted = admin_client.post(url, admin_cluster_form(
        cluster, name="prod-2", server="https://10.1.1.1:6443", token=TOKEN + "2"))
    assert accepted.status_code == 302
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.name, stored.server, stored.token) == ("prod-2", "https://10.1.1.1:6443",
                                                          TOKEN + "2")


def test_api_repository_url_change_needs_the_password_again(admin_client, repo):
    other = "https://attacker.example/team/deploy.git"
    refused = patch(admin_client, f"/api/repositories/{repo.pk}", {"url": other})
    assert refused.status_code == 400
    assert "changing the URL requires the password again" in refused.json()["detail"]
    stored = Repository.objects.get(pk=repo.pk)
    assert (stored.url, stored.password) == (URL, PASSWORD)
    # The same URL (a full PUT) or another field keeps the password.
    same = admin_client.put(f"/api/repositories/{repo.pk}", {"url": URL, "username": "bot"},
                            content_type="application/json")
    assert same.status_code == 200, same.content
    assert Repository.objects.get(pk=repo.pk).password == PASSWORD

    accepted = patch(admin_client, f"/api/repositories/{repo.pk}",
                     {"url": other, "password": PASSWORD + "2"})
    assert accepted.status_code == 200, accepted.content
    stored = Repository.objects.get(pk=repo.pk)
    assert (stored.url, stored.password) == (other, PASSWORD + "2")


def test_admin_repository_url_change_needs_the_password_again(admin_client, repo):
    url = f"/admin/repositories/repository/{repo.pk}/change/"
    form = {"url": "https://attacker.example/team/deploy.git", "username": "deploy",
            "password": "", "webhook_secret": ""}
    refused = admin_client.post(url, form)
    assert refused.status_code == 200
    assert ("changing the URL requires the password again"
            in refused.context["adminform"].form.errors["password"])
    stored = Repository.objects.get(pk=repo.pk)
    assert (stored.url, stored.password) == (URL, PASSWORD)

    accepted = admin_client.post(url, {**form, "password": PASSWORD + "2"})
    assert accepted.status_code == 302
    stored = Repository.objects.get(pk=repo.pk)
    assert (stored.url, stored.password) == (form["url"], PASSWORD + "2")
