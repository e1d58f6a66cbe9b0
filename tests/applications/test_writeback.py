"""Image write-back on the real stack: deploy repositories on the git server, the registry
(docker-registry 2.8) as a Harbor-kind Registry record, the kube-apiserver with KWOK, the engine
worker. A Harbor PUSH_ARTIFACT webhook sync_queue the write-back; the commit is read back with git and
the Deployment from the API server."""
import pytest
from django.test import Client

from apps.applications import writeback
from apps.applications.models import Application, ImageUpdater, Project
from apps.audit.models import AuditEntry
from apps.registries.models import Registry
from apps.repositories.models import Repository
from tests.engine.manifests import deployment
from tests.registries.conftest import copy_image, skopeo_digest

from tests.appstack import live, refreshed, run_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

HOOK_TOKEN = "harbor-hook-4d1c7e-never-shown"


def kustomization(image: str, tag: str) -> str:
    return ("# deploy of web\nresources:\n- web.yaml\nimages:\n"
            f"- name: {image}\n  newTag: {tag}  # written by the image updater\n")


def remote(deploy, *args) -> str:
    """git on a fresh fetch of the server's main branch (what is really pushed)."""
    deploy._git("fetch", "-q", "origin", "main")
    return deploy._git(*args)


def head(deploy) -> str:
    return remote(deploy, "rev-parse", "origin/main")


def show(deploy, path: str) -> str:
    return remote(deploy, "show", f"origin/main:{path}")


def image_of(app) -> str:
    return live(app, "apps/v1", "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"]


def harbor_push(repository: str, tag: str, digest: str, host: str) -> dict:
    """Harbor's PUSH_ARTIFACT payload, as its webhook documentation shows it."""
    namespace, _, short = repository.partition("/")
    return {"type": "PUSH_ARTIFACT", "occur_at": 1764777600, "operator": "ci-robot",
            "event_data": {"resources": [{"digest": digest, "tag": tag,
                                          "resource_url": f"{host}/{repository}:{tag}"}],
                           "repository": {"date_created": 1764777000, "name": short,
                                          "namespace": namespace, "repo_full_name": repository,
                                          "repo_type": "private"}}}


@pytest.fixture
def harbor_registry(registry, name) -> Registry:  # noqa: F811
    return Registry.objects.create(name=f"h-{name}"[:63].rstrip("-"), kind=Registry.Kind.HARBOR,
                                   url=registry.url, username=registry.username,
                                   password=registry.password, webhook_token=HOOK_TOKEN)


def test_a_harbor_push_of_a_newer_tag_is_committed_and_deployed(
        repo, make_app, harbor_registry, registry, buildah, name, sync_queue):  # noqa: F811
    repository = f"team/{name}"
    image = f"{registry.host}/{repository}"
    for tag in ("1.2.0", "1.3.0"):
        copy_image(registry, buildah.base_image, f"{repository}:{tag}", "v2s2")
    digest = skopeo_digest(registry, f"{repository}:1.3.0")
    repo.push({"app/kustomization.yaml": kustomization(image, "1.2.0"),
               "app/web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo, path="app", automated=True))  # the automated sync runs
    assert image_of(app) == f"{image}:1.2.0"
    ImageUpdater.objects.create(application=app, image=image, constraint="^1.2",
                                commit_author="Image Bot <bot@example.com>")
    before = head(repo)

    response = Client().post(f"/api/webhook/harbor?registry={harbor_registry.name}",
                             harbor_push(repository, "1.3.0", digest, registry.host),
                             content_type="application/json",
                             headers={"Authorization": HOOK_TOKEN})
    assert response.status_code == 202, response.content
    assert sync_queue.count == 1  # answered at once: the git work is the worker's
    assert head(repo) == before
    run_worker()

    after = head(repo)
    assert remote(repo, "rev-list", "--count", f"{before}..{after}") == "1"
    assert remote(repo, "log", "-1", "--format=%an <%ae>", after) == "Image Bot <bot@example.com>"
    written = show(repo, "app/kustomization.yaml")
    # Edited in place: the comments stay, the digest is added to the entry.
    assert written == kustomization(image, "1.3.0") + f"  digest: {digest}"  # (stripped)
    assert image_of(app) == f"{image}:1.3.0@{digest}"  # refreshed and synced by the engine
    app.refresh_from_db()
    assert (app.sync_status, app.synced_sha) == ("Synced", after)
    entry = AuditEntry.objects.get(action="application.image_updated")
    assert (entry.object_name, entry.details["commit"], entry.details["tag"]) == (app.name, after,
                                                                                   "1.3.0")
    assert entry.details["reference"] == f"{image}:1.3.0@{digest}"
    assert HOOK_TOKEN not in str(entry.details) and registry.password not in str(entry.details)

    # An older tag, and a tag outside ^1.2: nothing is committed.
    for tag, why in (("1.2.5", "not older than 1.2.5"), ("2.0.0", "outside")):
        outcome = writeback.write_back(image, tag, "")
        assert app.name in outcome.skipped and why in outcome.skipped[app.name]
        assert head(repo) == after
    assert ImageUpdater.objects.get(application=app).last_status == "Skipped"
    assert not AuditEntry.objects.filter(action="application.image_update_failed").exists()


def _app(app_name, repository, cluster, path) -> Application:
    return Application.objects.create(name=app_name, project=Project.objects.get_or_create(
        name="default")[0], repository=repository, cluster=cluster, namespace=app_name, path=path)


def test_two_apps_of_one_repository_get_one_commit(repo, git_server, cluster_record,  # noqa: F811
                                                   name, sync_queue):
    image = "registry.local:5000/team/web"
    repo.push({"a/kustomization.yaml": kustomization(image, "1.0.0"),
               "a/web.yaml": deployment("web", image=image),
               "b/kustomization.yaml": kustomization(image, "1.0.0"),
               "b/web.yaml": deployment("web", image=image),
               "c/web.yaml": deployment("web", image="registry.local:5000/team/other:1.0.0")})
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    apps = [_app(f"{name}-{p}"[:53], repository, cluster_record, p) for p in "abc"]
    for app in apps[:2]:
        ImageUpdater.objects.create(application=app, image=image, strategy="newest-build",
                                    pin_digest=False)
    ImageUpdater.objects.create(application=apps[2], image="registry.local:5000/team/other")
    before = head(repo)

    outcome = writeback.write_back(image, "build-7", "")
    after = head(repo)
    assert outcome.updated == {apps[0].name: after, apps[1].name: after}
    assert remote(repo, "rev-list", "--count", f"{before}..{after}") == "1"
    assert sorted(remote(repo, "diff", "--name-only", before, after).split()) == [
        "a/kustomization.yaml", "b/kustomization.yaml"]
    assert "newTag: build-7" in show(repo, "a/kustomization.yaml")
    assert "newTag: build-7" in show(repo, "b/kustomization.yaml")
    message = remote(repo, "log", "-1", "--format=%B", after)
    assert message.startswith(f"build: update {image} to build-7 in 2 applications")
    assert apps[0].name in message and apps[1].name in message
    # Each changed app is refreshed (the engine then syncs an automated one).
    queued = sorted(job.args[0] for job in sync_queue.jobs)
    assert queued == sorted(a.name for a in apps[:2])


def test_a_malformed_kustomization_is_reported_and_nothing_committed(
        repo, git_server, cluster_record, name, sync_queue, admin_user):  # noqa: F811
    image = "registry.local:5000/team/web"
    repo.push({"app/kustomization.yaml": "resources:\n- web.yaml\nimages:\n- name: [unclosed\n",
               "app/web.yaml": deployment("web", image=image)})
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    app = _app(name, repository, cluster_record, "app")
    ImageUpdater.objects.create(application=app, image=image, strategy="newest-build")
    before = head(repo)

    outcome = writeback.write_back(image, "1.4.0", "sha256:" + "ab" * 32)
    assert "kustomization.yaml" in outcome.failed[app.name]
    assert head(repo) == before and sync_queue.count == 0
    failure = AuditEntry.objects.get(action="application.image_update_failed")
    assert "kustomization.yaml" in failure.details["error"]
    client = Client()
    client.force_login(admin_user)
    shown = client.get(f"/api/applications/{app.name}/image-updaters/").json()
    assert shown[0]["last_status"] == "Failed"
    assert "kustomization.yaml" in shown[0]["last_message"]


def test_a_helm_values_key_that_is_absent_is_named(repo, git_server, cluster_record, name,  # noqa: F811
                                                   sync_queue):
    repo.push({"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
               "chart/values.yaml": "image:\n  repository: registry.local:5000/team/web\n"
                                    '  tag: "1.0.0"  # set by the image updater\n',
               "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                          "  name: web\n"})
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    app = _app(name, repository, cluster_record, "chart")
    updater = ImageUpdater.objects.create(application=app, image="registry.local:5000/team/web",
                                          strategy="newest-build", target="helm",
                                          helm_tag_key="image.version")
    before = head(repo)
    outcome = writeback.write_back("registry.local:5000/team/web", "2.0.1", "")
    assert "image.version" in outcome.failed[app.name]
    assert head(repo) == before

    updater.helm_tag_key = "image.tag"
    updater.save()
    outcome = writeback.write_back("registry.local:5000/team/web", "2.0.1", "")
    assert app.name in outcome.updated, outcome
    assert show(repo, "chart/values.yaml").endswith('  tag: "2.0.1"  # set by the image updater')


def test_policy_rules_are_checked_through_the_api(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    url = f"/api/applications/{world.app.name}/image-updaters/"
    bad = client.post(url, {"image": "registry.local:5000/team/web:1.0", "constraint": "^^1",
                            "commit_message": "{app.__class__}"}, content_type="application/json")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) >= {"image", "constraint", "commit_message"}
    good = client.post(url, {"image": "registry.local:5000/team/web", "constraint": "~1.4"},
                       content_type="application/json")
    assert good.status_code == 201, good.content
    again = client.post(url, {"image": "registry.local:5000/team/web"},
                        content_type="application/json")
    assert again.status_code == 400 and "image" in again.json()["errors"]
    policy = f"{url}{good.json()['id']}/"
    changed = client.patch(policy, {"strategy": "pattern", "constraint": ""},
                           content_type="application/json")
    assert changed.status_code == 400 and "constraint" in changed.json()["errors"]
    changed = client.patch(policy, {"strategy": "pattern", "constraint": "regexp:^v[0-9]+$"},
                           content_type="application/json")
    assert changed.status_code == 200 and changed.json()["strategy"] == "pattern"
    page = client.get(f"/admin/applications/application/{world.app.pk}/change/")
    assert page.status_code == 200 and "regexp:^v[0-9]+$" in page.content.decode()  # inline
    assert client.delete(policy).status_code == 204
    assert not world.app.image_updaters.exists()


@pytest.mark.parametrize("strategy, constraint, accepted, refused", [
    ("semver", "^1.2", ["1.2.0", "1.9.3", "v1.4.0"], ["1.1.9", "2.0.0", "latest", "1.3.0-rc1"]),
    ("semver", "", ["0.1.0", "3.0.0"], ["latest", "build-7"]),
    ("pattern", "release-*", ["release-1", "release-2024.1"], ["1.0.0", "pre-release-1"]),
    ("pattern", r"regexp:^v\d+\.\d+$", ["v1.2", "v10.0"], ["v1.2.3", "1.2"]),
    ("newest-build", "", ["build-7", "latest", "1.0"], []),
    ("newest-build", "main-*", ["main-abc123"], ["feature-x"]),
])
def test_which_tags_a_policy_accepts(strategy, constraint, accepted, refused):
    policy = ImageUpdater(image="registry.local:5000/team/web", strategy=strategy,
                          constraint=constraint)
    assert writeback.policy_problems(policy) == {}
    assert [t for t in accepted + refused if writeback.accepts(policy, t)] == accepted


def test_policies_in_the_admin_are_checked_and_audited(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/applications/application/{world.app.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update({"labels": "{}", "source": "{}", "sync_options": "[]", "ignore_differences": "[]",
                 "image_updaters-TOTAL_FORMS": "1", "image_updaters-INITIAL_FORMS": "0",
                 "image_updaters-0-image": "registry.local:5000/team/web",
                 "image_updaters-0-strategy": "semver", "image_updaters-0-constraint": "^^2",
                 "image_updaters-0-helm_values_file": "values.yaml",
                 "image_updaters-0-helm_tag_key": "image.tag",
                 "image_updaters-0-pin_digest": "on", "image_updaters-0-enabled": "on"})
    refused = client.post(url, data)
    assert refused.status_code == 200 and "not a semver range" in refused.content.decode()
    assert not world.app.image_updaters.exists()
    data["image_updaters-0-constraint"] = "^2"
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[-3000:]
    assert world.app.image_updaters.get().constraint == "^2"
    assert AuditEntry.objects.filter(action="application.image_updater.created").exists()


def test_a_refused_push_is_reported_and_nothing_written(repo, git_server, cluster_record,  # noqa: F811
                                                        name, sync_queue):
    image = "registry.local:5000/team/web"
    repo.push({"app/kustomization.yaml": kustomization(image, "1.0.0"),
               "app/web.yaml": deployment("web", image=image)})
    # The server refuses every push to this repository (a protected branch, say).
    hook = git_server.root / f"{name}.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    app = _app(name, repository, cluster_record, "app")
    ImageUpdater.objects.create(application=app, image=image, strategy="newest-build")
    before = head(repo)

    outcome = writeback.write_back(image, "1.1.0", "")
    assert "nothing was written" in outcome.failed[app.name]
    assert "protected" in outcome.failed[app.name] or "rejected" in outcome.failed[app.name]
    assert head(repo) == before and sync_queue.count == 0
    failure = AuditEntry.objects.get(action="application.image_update_failed")
    assert git_server.password not in str(failure.details)
    assert ImageUpdater.objects.get(application=app).last_status == "Failed"
