"""Image write-back: the in-place edits of an application's folder (apps/engine/source/
image_update.py), and their commits on the local stack's real git server, where two writers
pushing at once both land (apps/engine/source/git_commit.py)."""
from __future__ import annotations

import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
import yaml

from apps.engine.errors import SourceError
from apps.engine.source import GitCredentials, RepoCache
from apps.engine.source import git_commit
from apps.engine.source.image_update import (HelmTarget, Image, ImageNotUsed, ImageUpdateError,
                                             InvalidImage, KeyPathNotFound, MalformedFile,
                                             update_files)
from tests import gitcli

WEB = "registry.example.test:5000/team/web"
API = "registry.example.test:5000/team/api"
DIGEST = "sha256:" + "ab" * 32
AUTHOR = "GitOps UI <gitops@example.test>"

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the web tier
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: {WEB}:1.0.0  # same image, runs the migrations
      containers:
      - name: web
        image: "{WEB}:1.0.0"
        ports: [{{containerPort: 8080}}]
      - name: proxy
        image: nginx:1.27
"""

KUSTOMIZATION = f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml  # see the Deployment

# pinned by the pipeline
images:
  - name: {WEB}
    newTag: "1.0.0"   # keep this comment
    digest: sha256:{"0" * 64}
  - name: {API}
    newTag: 2.0.0
"""


def kustomize_folder(kustomization: str = KUSTOMIZATION) -> dict[str, bytes]:
    return {"kustomization.yaml": kustomization.encode(), "deployment.yaml": DEPLOYMENT.encode()}


# --- kustomize --------------------------------------------------------------------------------
def test_a_kustomization_entry_gets_the_new_tag_and_the_rest_stays_byte_for_byte():
    changed = update_files(kustomize_folder(), Image(WEB, "1.2.0"))
    assert list(changed) == ["kustomization.yaml"]  # resources are kustomize's to rewrite
    text = changed["kustomization.yaml"].decode()
    expected = KUSTOMIZATION.replace('newTag: "1.0.0"', 'newTag: "1.2.0"').replace(
        f"    digest: sha256:{'0' * 64}\n", "")  # a stale digest would pin the old image
    assert text == expected
    assert "# keep this comment" in text and "# pinned by the pipeline" in text
    images = yaml.safe_load(text)["images"]
    assert images == [{"name": WEB, "newTag": "1.2.0"}, {"name": API, "newTag": "2.0.0"}]


def test_a_digest_is_written_next_to_the_tag_and_a_newname_entry_matches():
    kustomization = f"""\
resources: [deployment.yaml]
images:
- name: web-placeholder
  newName: {WEB}   # the real image
"""
    changed = update_files(kustomize_folder(kustomization), Image(WEB, "1.3.0", DIGEST))
    text = changed["kustomization.yaml"].decode()
    assert text == kustomization + f"  newTag: 1.3.0\n  digest: {DIGEST}\n"
    # Already there: nothing to commit.
    assert update_files(kustomize_folder(text), Image(WEB, "1.3.0", DIGEST)) == {}


def test_an_entry_is_added_when_the_resources_use_the_image_but_none_names_it():
    kustomization = "resources:\n- deployment.yaml\n# end\n"
    text = update_files(kustomize_folder(kustomization),
                        Image(WEB, "1.10"))["kustomization.yaml"].decode()
    assert text == (f"resources:\n- deployment.yaml\nimages:\n- name: {WEB}\n"
                    "  newTag: '1.10'\n# end\n")  # '1.10', not the number 1.1
    assert yaml.safe_load(text)["images"] == [{"name": WEB, "newTag": "1.10"}]
    with pytest.raises(ImageNotUsed, match="no resource of the kustomization uses it"):
        update_files(kustomize_folder(kustomization), Image(API, "3.0.0"))
    flow = "resources: [deployment.yaml]\nimages: []\n"
    text = update_files(kustomize_folder(flow), Image(WEB, "1.4.0"))["kustomization.yaml"]
    assert text.decode() == ("resources: [deployment.yaml]\n"
                             f"images: [{{name: {WEB}, newTag: 1.4.0}}]\n")


def test_an_added_entry_goes_after_the_last_one_not_after_the_comments_that_follow():
    kustomization = f"resources:\n- deployment.yaml\nimages:\n  - name: {API}\n    newTag: '1'\n" \
                    "\n# tags above are written by GitOps UI\nnamePrefix: prod-\n"
    text = update_files(kustomize_folder(kustomization), Image(WEB, "3"))["kustomization.yaml"]
    assert text.decode() == kustomization.replace(
        "newTag: '1'\n", f"newTag: '1'\n  - name: {WEB}\n    newTag: '3'\n")


def test_kustomize_itself_renders_the_edited_folder_with_the_new_image(tmp_path):
    from tests.localstack.kube import cluster_bin_dir
    folder = kustomize_folder("resources: [deployment.yaml]\n")
    folder.update(update_files(folder, Image(WEB, "1.5.0", DIGEST)))
    for path, data in folder.items():
        (tmp_path / path).write_bytes(data)
    built = subprocess.run([str(cluster_bin_dir() / "kustomize"), "build", str(tmp_path)],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    spec = yaml.safe_load(built)["spec"]["template"]["spec"]
    assert [c["image"] for c in spec["initContainers"] + spec["containers"]] == [
        f"{WEB}:1.5.0@{DIGEST}", f"{WEB}:1.5.0@{DIGEST}", "nginx:1.27"]


# --- Helm values ------------------------------------------------------------------------------
VALUES = """\
# Default values for web.
replicaCount: 2
image:
  repository: old.example.test/web   # where from
  tag: ""   # defaults to the chart's appVersion
  pullPolicy: IfNotPresent
sidecar:
  image:
    tag:
"""


def test_a_helm_values_key_path_is_set_in_place():
    chart = {"Chart.yaml": b"name: web\nversion: 0.1.0\n", "values.yaml": VALUES.encode(),
             "templates/deployment.yaml": b"image: {{ .Values.image.repository }}\n"}
    changed = update_files(chart, Image(WEB, "1.2.0"),
                           HelmTarget(tag_key="image.tag", repository_key="image.repository"))
    assert changed == {"values.yaml": VALUES.replace('tag: ""', 'tag: "1.2.0"').replace(
        "old.example.test/web", WEB).encode()}
    empty = update_files(chart, Image(WEB, "1.2.0"), HelmTarget(tag_key="sidecar.image.tag"))
    assert empty["values.yaml"].decode().endswith("  image:\n    tag: 1.2.0\n")
    with pytest.raises(KeyPathNotFound, match="no key image.digest"):
        update_files(chart, Image(WEB, "1.2.0", DIGEST), HelmTarget(digest_key="image.digest"))
    with pytest.raises(KeyPathNotFound, match="image holds a mapping, not a value"):
        update_files(chart, Image(WEB, "1.2.0"), HelmTarget(tag_key="image"))
    with pytest.raises(KeyPathNotFound, match="no such values file"):
        update_files(chart, Image(WEB, "1"), HelmTarget(values_file="values-prod.yaml"))
    with pytest.raises(ImageUpdateError, match="name the values key path"):
        update_files(chart, Image(WEB, "1"))


# --- plain manifests --------------------------------------------------------------------------
def test_plain_manifests_get_the_image_of_containers_and_init_containers():
    folder = {"deployment.yaml": DEPLOYMENT.encode(),
              "more/other.yml": b"kind: ConfigMap\ndata:\n  image: " + WEB.encode() + b":1\n"}
    changed = update_files(folder, Image(WEB, "1.2.0", DIGEST))
    assert list(changed) == ["deployment.yaml"]  # a ConfigMap's data is not a container
    new_ref = f"{WEB}:1.2.0@{DIGEST}"
    assert changed["deployment.yaml"].decode() == DEPLOYMENT.replace(
        f"image: {WEB}:1.0.0", f"image: {new_ref}").replace(f'"{WEB}:1.0.0"', f'"{new_ref}"')
    with pytest.raises(ImageNotUsed, match="no container"):
        update_files(folder, Image(API, "1"))


def test_docker_hub_short_names_match_and_keep_their_spelling():
    manifest = b"kind: Pod\nspec:\n  containers:\n  - name: n\n    image: nginx:1.27 # pin\n"
    changed = update_files({"pod.yaml": manifest}, Image("docker.io/library/nginx", "1.28"))
    assert changed["pod.yaml"] == manifest.replace(b"nginx:1.27", b"nginx:1.28")


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("image", [
    ("team/web:1.0", "1.1", ""), ("team/web", "1.1\nimages: []", ""), ("Team/Web", "1", ""),
    ("team/web", "", ""), ("team/web", "1", "md5"), ("team/web", "-1", ""),
])
def test_an_image_that_is_not_a_reference_is_refused(image):
    with pytest.raises(InvalidImage):
        Image(*image)


def test_a_malformed_file_is_refused_naming_it_and_its_line():
    broken = "resources:\n- deployment.yaml\nimages:\n  - name: [unclosed\n"
    with pytest.raises(MalformedFile, match=r"kustomization.yaml:\d+: not valid YAML"):
        update_files(kustomize_folder(broken), Image(WEB, "1"))
    with pytest.raises(MalformedFile, match="images: is not a list"):
        update_files(kustomize_folder("images: web\n"), Image(WEB, "1"))
    with pytest.raises(MalformedFile, match="not UTF-8"):
        update_files({"deployment.yaml": b"\xff\xfe"}, Image(WEB, "1"))


def test_crlf_files_keep_their_line_ends():
    kustomization = "resources:\r\n- deployment.yaml\r\n"
    text = update_files(kustomize_folder(kustomization), Image(WEB, "2"))["kustomization.yaml"]
    assert text.decode() == kustomization + f"images:\r\n- name: {WEB}\r\n  newTag: '2'\r\n"


# --- committing on the real git server --------------------------------------------------------
def git(*args, cwd=None) -> str:
    return gitcli.git(*args, cwd=cwd).stdout.strip()


@pytest.fixture
def deploy_repo(git_server):
    """A repository on the stack's git server holding the kustomize folder under app/."""
    name = f"engine/writeback-{uuid.uuid4().hex[:8]}"
    url = git_server.create_repo(name)
    with tempfile.TemporaryDirectory() as work:
        git("init", "--quiet", "--initial-branch=main", work)
        for path, data in kustomize_folder().items():
            (Path(work) / "app").mkdir(exist_ok=True)
            (Path(work) / "app" / path).write_bytes(data)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "-m", "initial", cwd=work)
        git("push", "--quiet", git_server.auth_url(name), "HEAD:refs/heads/main", cwd=work)
    return name, url


@pytest.fixture
def creds(git_server) -> GitCredentials:
    return GitCredentials(username=git_server.username, password=git_server.password)


def write_back(cache: RepoCache, url: str, creds, image: Image, before=None) -> str:
    """What a write-back job does: read the folder at the branch head, edit, commit from it."""
    base = cache.resolve(url, "main", creds)
    folder = cache.checkout(url, base, creds) / "app"
    current = {p.name: p.read_bytes() for p in folder.iterdir()}
    changes = {f"app/{path}": data for path, data in update_files(current, image).items()}
    if before:
        before()
    return cache.commit_files(url, "main", changes, f"deploy {image.reference()}", AUTHOR,
                              creds, base=base)


def remote_history(git_server, name: str) -> tuple[list[str], dict]:
    with tempfile.TemporaryDirectory() as work:
        git("clone", "--quiet", git_server.auth_url(name), work)
        log = git("log", "--format=%s|%P", cwd=work).splitlines()
        kustomization = yaml.safe_load((Path(work) / "app/kustomization.yaml").read_text())
    return log, {i["name"]: i["newTag"] for i in kustomization["images"]}


def test_two_concurrent_write_backs_both_land(git_server, deploy_repo, creds, tmp_path):
    name, url = deploy_repo
    rounds = 3
    barrier = threading.Barrier(2, timeout=60)
    errors = []

    def writer(worker: str, repository: str, version: str):
        cache = RepoCache(tmp_path / worker, timeout=60)  # a worker of its own: its own clone
        try:
            for n in range(rounds):
                # Both read the same head, then commit at once: one of them must rebase.
                write_back(cache, url, creds, Image(repository, f"{version}.{n}"),
                           before=barrier.wait)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            barrier.abort()
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=("one", WEB, "1.1")),
               threading.Thread(target=writer, args=("two", API, "2.1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    log, tags = remote_history(git_server, name)
    assert tags == {WEB: f"1.1.{rounds - 1}", API: f"2.1.{rounds - 1}"}  # no line lost
    subjects = [line.split("|")[0] for line in log]
    assert sorted(subjects) == sorted(["initial"] + [f"deploy {WEB}:1.1.{n}" for n in range(
        rounds)] + [f"deploy {API}:2.1.{n}" for n in range(rounds)])  # no commit lost
    assert all(len(line.split("|")[1].split()) <= 1 for line in log)  # linear: no merges


def test_the_same_line_changed_by_both_fails_the_second_and_pushes_nothing(
        git_server, deploy_repo, creds, tmp_path):
    name, url = deploy_repo
    first, second = RepoCache(tmp_path / "a", timeout=60), RepoCache(tmp_path / "b", timeout=60)
    base = second.resolve(url, "main", creds)
    folder = second.checkout(url, base, creds) / "app"
    stale = update_files({p.name: p.read_bytes() for p in folder.iterdir()}, Image(WEB, "9.0"))
    write_back(first, url, creds, Image(WEB, "8.0"))
    with pytest.raises(SourceError, match="same lines of app/kustomization.yaml"):
        second.commit_files(url, "main", {f"app/{p}": d for p, d in stale.items()},
                            "deploy 9.0", AUTHOR, creds, base=base)
    log, tags = remote_history(git_server, name)
    assert tags[WEB] == "8.0" and [line.split("|")[0] for line in log] == [
        f"deploy {WEB}:8.0", "initial"]


def test_a_branch_that_keeps_moving_gives_up_after_bounded_attempts(
        git_server, deploy_repo, creds, tmp_path, monkeypatch):
    name, url = deploy_repo
    cache = RepoCache(tmp_path / "c", timeout=60)
    real_push, pushes = cache._push, []

    def someone_else_pushes_first(*args):
        # Another writer's commit lands between each of our fetches and pushes (real pushes).
        with tempfile.TemporaryDirectory() as work:
            git("clone", "--quiet", git_server.auth_url(name), work)
            (Path(work) / f"other-{len(pushes)}.txt").write_text("x\n")
            git("add", "--all", cwd=work)
            git("commit", "--quiet", "-m", f"other {len(pushes)}", cwd=work)
            git("push", "--quiet", "origin", "HEAD:main", cwd=work)
        pushes.append(args)
        return real_push(*args)
    monkeypatch.setattr(cache, "_push", someone_else_pushes_first)
    with pytest.raises(SourceError, match=f"refused {git_commit.PUSH_ATTEMPTS} times"):
        write_back(cache, url, creds, Image(WEB, "5.0"))
    assert len(pushes) == git_commit.PUSH_ATTEMPTS
    log, tags = remote_history(git_server, name)
    assert tags[WEB] == "1.0.0" and len(log) == 1 + git_commit.PUSH_ATTEMPTS
