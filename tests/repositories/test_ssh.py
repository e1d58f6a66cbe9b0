"""Repositories over SSH, against the local stack's OpenSSH server (tests/localstack/sshd.py),
which serves the same bare repositories as the Git HTTP server: content is pushed over HTTP with
the git CLI, and read by the code under test over SSH with a private key and known_hosts.
"""
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from apps.applications.models import Application, Project
from apps.clusters.models import Cluster
from apps.engine.errors import SourceError
from apps.engine.source import GitCredentials, RepoCache
from apps.repositories.models import Repository
from tests.appstack import DeployRepo, live, refreshed, sync_and_wait
from tests.engine.manifests import configmap
from tests.localstack.sshd import make_key


@pytest.fixture
def deploy_repo(git_server, tmp_path) -> DeployRepo:
    return DeployRepo(git_server, f"ssh/r{uuid.uuid4().hex[:8]}", tmp_path)


@pytest.fixture
def ssh_url(ssh_git_server, deploy_repo) -> str:
    name = deploy_repo.url.rsplit("/", 2)[-2] + "/" + deploy_repo.url.rsplit("/", 1)[-1][:-4]
    return ssh_git_server.url(name)


@pytest.fixture
def ssh_creds(ssh_git_server) -> GitCredentials:
    return GitCredentials(ssh_private_key=ssh_git_server.private_key,
                          ssh_known_hosts=ssh_git_server.known_hosts)


@pytest.fixture
def other_key(tmp_path) -> str:
    return make_key(tmp_path / "other_key")


def key_lines(key: str) -> list[str]:
    """The lines of a private key that are key material (not the BEGIN/END armour)."""
    return [ln for ln in key.splitlines() if ln and not ln.startswith("-----")]


def assert_no_key_in(text: str, key: str) -> None:
    for line in key_lines(key):
        assert line not in text


def assert_no_key_on_disk(folder: Path, key: str) -> None:
    lines = [ln.encode() for ln in key_lines(key)]
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(ln in data for ln in lines), path


def nothing_fetched(cache: RepoCache, url: str) -> bool:
    objects = cache.repo_dir(url) / "repo.git" / "objects"
    return not any(p.is_file() for p in objects.rglob("*")) if objects.exists() else True


# --- the engine ---------------------------------------------------------------------------------
def test_an_ssh_repository_resolves_and_checks_out(deploy_repo, ssh_url, ssh_creds, tmp_path):
    sha = deploy_repo.push({"app/cm.yaml": configmap("over-ssh")})
    cache = RepoCache(tmp_path / "cache", timeout=60)
    assert cache.resolve(ssh_url, "main", ssh_creds) == sha
    root = cache.checkout(ssh_url, sha, ssh_creds, paths=["app"])
    assert "over-ssh" in (root / "app/cm.yaml").read_text()
    assert_no_key_on_disk(tmp_path, ssh_creds.ssh_private_key)


def test_a_wrong_host_key_is_refused_and_nothing_is_fetched(deploy_repo, ssh_url, ssh_git_server,
                                                            ssh_creds, other_key, tmp_path):
    sha = deploy_repo.push({"cm.yaml": configmap("a")})
    cache = RepoCache(tmp_path / "cache", timeout=60)
    impostor = Path(f"{tmp_path / 'other_key'}.pub").read_text().split()
    host = f"[127.0.0.1]:{ssh_git_server.port}"
    wrong = GitCredentials(ssh_private_key=ssh_creds.ssh_private_key,
                           ssh_known_hosts=f"{host} {impostor[0]} {impostor[1]}\n")
    with pytest.raises(SourceError) as exc:
        cache.checkout(ssh_url, sha, wrong)
    assert str(exc.value) == (f"host key verification failed for {host}: its host key does not "
                              "match the repository's known_hosts (nothing was fetched)")
    assert nothing_fetched(cache, ssh_url)

    # The right key, filed under another host: no way around the check either.
    elsewhere = GitCredentials(ssh_private_key=ssh_creds.ssh_private_key,
                               ssh_known_hosts=ssh_creds.ssh_known_hosts.replace(host, "10.0.0.1"))
    with pytest.raises(SourceError, match=rf"^host key verification failed for \[127\.0\.0\.1\]:"
                                          rf"{ssh_git_server.port}: the repository's known_hosts "
                                          "has no key for it"):
        cache.resolve(ssh_url, "main", elsewhere)
    assert nothing_fetched(cache, ssh_url)


def test_a_wrong_key_is_refused(deploy_repo, ssh_url, ssh_creds, other_key, tmp_path):
    deploy_repo.push({"cm.yaml": configmap("a")})
    cache = RepoCache(tmp_path / "cache", timeout=60)
    wrong = GitCredentials(ssh_private_key=other_key, ssh_known_hosts=ssh_creds.ssh_known_hosts)
    with pytest.raises(SourceError) as exc:
        cache.resolve(ssh_url, "main", wrong)
    assert str(exc.value) == f"authentication failed for {ssh_url}: the server refused the SSH key"
    assert_no_key_in(str(exc.value) + getattr(exc.value, "output", ""), other_key)
    with pytest.raises(SourceError, match="needs a private key and the server's known_hosts"):
        cache.resolve(ssh_url, "main", GitCredentials(ssh_known_hosts=ssh_creds.ssh_known_hosts))
    with pytest.raises(SourceError, match="^the SSH private key must be a whole private key"):
        cache.resolve(ssh_url, "main", GitCredentials(ssh_private_key="not a key",
                                                      ssh_known_hosts=ssh_creds.ssh_known_hosts))


@pytest.mark.parametrize("url", [
    "ssh://-oProxyCommand=touch%20/tmp/pwned/team/a.git",
    "ssh://git@-oProxyCommand=x/team/a.git",
    "ssh://git:password@example.com/team/a.git",
    "ssh://git@example.com:99999/team/a.git",
    "ssh://git@example.com/-team/a.git",
    "ssh://git@example.com/team/a b.git",
])
def test_ssh_urls_that_could_be_read_as_options_are_refused_before_git_runs(url, tmp_path,
                                                                             ssh_creds):
    cache = RepoCache(tmp_path / "cache", timeout=30)
    with pytest.raises(SourceError, match="^not a valid SSH repository URL"):
        cache.resolve(url, "main", ssh_creds)
    assert not list((tmp_path / "cache").glob("*/repo.git"))


def test_scp_like_urls_with_options_are_not_taken_as_ssh(tmp_path, ssh_creds):
    cache = RepoCache(tmp_path / "cache", timeout=30)
    for url in ("-oProxyCommand=x@host:team/a.git", "git@-oProxyCommand=x:team/a.git"):
        with pytest.raises(SourceError, match="^(only http|not a valid SSH)"):
            cache.resolve(url, "main", ssh_creds)


# --- the product ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_an_app_from_an_ssh_repository_syncs(deploy_repo, ssh_url, ssh_git_server, kube):
    sha = deploy_repo.push({"app/cm.yaml": configmap("from-ssh")})
    repo = Repository.objects.create(url=ssh_url, ssh_private_key=ssh_git_server.private_key,
                                     ssh_known_hosts=ssh_git_server.known_hosts)
    cluster = Cluster.objects.create(name=f"local-{uuid.uuid4().hex[:6]}",
                                     auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    project, _ = Project.objects.get_or_create(name="default")
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    app = Application.objects.create(name=name, project=project, repository=repo,
                                     cluster=cluster, namespace=name, path="app",
                                     sync_options=["CreateNamespace=true"])
    app = refreshed(app)
    assert (app.sync_status, app.target_sha, app.conditions) == ("OutOfSync", sha, [])
    op = sync_and_wait(app)
    assert op.phase == "Succeeded", op.message
    assert live(app, "v1", "ConfigMap", "from-ssh")["metadata"]["name"] == "from-ssh"
    assert refreshed(app).sync_status == "Synced"
    assert_no_key_on_disk(settings.DATA_DIR, ssh_git_server.private_key)


@pytest.mark.django_db
def test_the_api_takes_the_key_and_never_returns_it(admin_client, deploy_repo, ssh_url,
                                                    ssh_git_server, other_key):
    deploy_repo.push({"cm.yaml": configmap("a")})
    key, known_hosts = ssh_git_server.private_key, ssh_git_server.known_hosts

    missing = admin_client.post("/api/repositories/", {"url": ssh_url},
                                content_type="application/json")
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) >= {"ssh_private_key", "ssh_known_hosts"}, missing.json()

    created = admin_client.post("/api/repositories/", {
        "url": ssh_url, "ssh_private_key": key, "ssh_known_hosts": known_hosts},
        content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "ssh_private_key" not in body and body["has_ssh_private_key"] is True
    assert body["ssh_known_hosts"].strip() == known_hosts.strip()
    pk = body["id"]

    checked = admin_client.post(f"/api/repositories/{pk}/check")
    assert checked.json()["connection_status"] == "Successful", checked.json()
    for response in (checked, admin_client.get(f"/api/repositories/{pk}"),
                     admin_client.get("/api/repositories/")):
        assert_no_key_in(response.content.decode(), key)

    # Where the key is shown to (the URL, the accepted host keys) moves only with the key.
    for change in ({"url": ssh_url.replace("127.0.0.1", "localhost")},
                   {"ssh_known_hosts": known_hosts + known_hosts.replace("127.0.0.1", "::1")}):
        refused = admin_client.patch(f"/api/repositories/{pk}", change,
                                     content_type="application/json")
        assert refused.status_code == 400
        assert "requires the SSH private key again" in str(refused.json()), refused.json()

    # A wrong key: the check says so, without any key in the answer.
    admin_client.patch(f"/api/repositories/{pk}", {"ssh_private_key": other_key},
                       content_type="application/json")
    failed = admin_client.post(f"/api/repositories/{pk}/check").json()
    assert failed["connection_status"] == "Failed"
    assert "refused the SSH key" in failed["connection_message"]
    assert_no_key_in(str(failed), other_key)
    assert Repository.objects.get(pk=pk).ssh_private_key.strip() == other_key.strip()

    # An HTTPS URL takes no SSH key; an options-like host is refused.
    https = admin_client.post("/api/repositories/", {
        "url": "https://git.example.com/a/b.git", "ssh_private_key": key},
        content_type="application/json")
    assert https.status_code == 400 and "ssh_private_key" in https.json()["errors"]
    assert_no_key_in(https.content.decode(), key)
    options = admin_client.post("/api/repositories/", {
        "url": "ssh://-oProxyCommand=x/a.git", "ssh_private_key": key,
        "ssh_known_hosts": known_hosts}, content_type="application/json")
    assert options.status_code == 400 and "url" in options.json()["errors"]


@pytest.mark.django_db
def test_the_admin_takes_the_key_and_never_shows_it(admin_client, ssh_url, ssh_git_server):
    key, known_hosts = ssh_git_server.private_key, ssh_git_server.known_hosts
    form = {"url": ssh_url, "username": "", "password": "", "ssh_private_key": key,
            "ssh_known_hosts": known_hosts, "webhook_secret": ""}
    missing = admin_client.post("/admin/repositories/repository/add/",
                                {**form, "ssh_private_key": ""})
    assert missing.status_code == 200 and b"an SSH URL needs this" in missing.content
    assert not Repository.objects.exists()

    added = admin_client.post("/admin/repositories/repository/add/", form)
    assert added.status_code == 302, added.content.decode()[-3000:]
    repo = Repository.objects.get()
    assert repo.ssh_private_key.strip() == key.strip()
    page = admin_client.get(f"/admin/repositories/repository/{repo.pk}/change/")
    assert page.status_code == 200
    assert_no_key_in(page.content.decode(), key)

    moved = admin_client.post(f"/admin/repositories/repository/{repo.pk}/change/",
                              {**form, "url": ssh_url.replace("127.0.0.1", "localhost"),
                               "ssh_private_key": ""})
    assert moved.status_code == 200 and b"requires the SSH private key again" in moved.content
    assert_no_key_in(moved.content.decode(), key)
    assert Repository.objects.get().url == ssh_url
