"""The missing-image guard on the real stack: the stack's registry (docker-registry 2.8, basic
auth) as a Registry record, deploy repositories on the git server, the kube-apiserver with KWOK.

An image missing from a known registry is a MissingImage condition and no automated sync starts
(nothing reaches the cluster); once the image is pushed or the manifest fixed, a refresh clears
it and the sync runs. Unknown registries are not asked; a registry that does not answer is a
condition that blocks nothing."""
import socket
from pathlib import Path

import pytest

from apps.applications import image_guard, refreshing
from apps.registries.models import Registry
from tests.engine.manifests import deployment
from tests.registries.conftest import copy_image, skopeo_digest

from tests.appstack import live, refreshed, sync_and_wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def _fresh_answers():
    image_guard.forget()  # answers remembered by earlier tests are about other records
    yield
    image_guard.forget()


@pytest.fixture
def local(registry) -> Registry:
    return Registry.objects.create(name="local", url=registry.url, username=registry.username,
                                   password=registry.password)


def kinds(app) -> list[str]:
    return [c["type"] for c in app.conditions]


def image_of(app, deployment_name="web") -> str | None:
    obj = live(app, "apps/v1", "Deployment", deployment_name)
    return obj and obj["spec"]["template"]["spec"]["containers"][0]["image"]


def manifest_requests(registry, repository: str) -> int:
    """How many manifest requests for `repository` the registry served, from its access log."""
    text = (Path(registry.log_dir) / "registry.log").read_text(errors="replace")
    return text.count(f"/v2/{repository}/manifests/")


def test_a_missing_tag_blocks_automated_syncs_until_pushed(repo, make_app, local,  # noqa: F811
                                                           registry, buildah, name,
                                                           monkeypatch):
    # However slow this machine, answers stay remembered for the whole test.
    monkeypatch.setattr(image_guard, "CHECK_TTL", 3600.0)
    repository = f"guard/{name}"
    image = f"{registry.host}/{repository}:1.4.0"
    repo.push({"web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo, automated=True))

    missing = [c for c in app.conditions if c["type"] == "MissingImage"]
    assert [c["message"] for c in missing] == [
        f"image {image} not found in registry local; automated sync waits until it is there"]
    assert app.sync_status == "OutOfSync" and not app.operations.exists()
    assert image_of(app) is None  # nothing was applied

    # A refresh where nothing changed asks the registry nothing, and still does not sync.
    asked = manifest_requests(registry, repository)
    assert asked >= 1  # the first refresh did ask
    app = refreshed(app)
    assert manifest_requests(registry, repository) == asked
    assert "MissingImage" in kinds(app) and not app.operations.exists()

    copy_image(registry, buildah.base_image, f"{repository}:1.4.0", "oci")
    app = refreshed(app)  # the remembered answer still stands...
    assert "MissingImage" in kinds(app)
    refreshing.refresh_now(app, hard=True)  # the page's "Hard refresh" asks again at once
    app.refresh_from_db()
    assert kinds(app) == [] and app.sync_status == "Synced"
    assert image_of(app) == image
    assert app.operations.get().automated


def test_fixing_the_manifest_clears_the_condition(repo, make_app, local,  # noqa: F811
                                                  registry, buildah):
    repo.push({"web.yaml": deployment("web", image=f"{registry.host}/base/busybox:9.9-typo")})
    app = refreshed(make_app(repo, automated=True))
    assert kinds(app) == ["MissingImage"] and image_of(app) is None

    digest = skopeo_digest(registry, "base/busybox:1.35")
    pinned = f"{registry.host}/base/busybox@{digest}"
    repo.push({"web.yaml": deployment("web", image=pinned)}, message="fix the tag")
    app = refreshed(app)
    assert kinds(app) == [] and app.sync_status == "Synced"
    assert image_of(app) == pinned

    # A digest found is found for good: later refreshes, even hard ones, do not ask again.
    asked = manifest_requests(registry, "base/busybox")
    assert asked >= 1
    refreshing.refresh_now(app, hard=True)
    assert manifest_requests(registry, "base/busybox") == asked


def test_a_manual_sync_is_allowed_while_the_condition_stands(repo, make_app, local,  # noqa: F811
                                                             registry):
    image = f"{registry.host}/guard/never-pushed:1"
    repo.push({"web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo))
    assert kinds(app) == ["MissingImage"]
    op = sync_and_wait(app)  # the user saw the condition and chose to go on
    assert op.phase == "Succeeded", op.message
    assert image_of(app) == image
    app.refresh_from_db()
    assert kinds(app) == ["MissingImage"]  # still true after the sync


def test_images_on_unknown_registries_are_not_checked(repo, make_app, local):  # noqa: F811
    image = "registry.unknown.example:5000/team/web:1.0"
    repo.push({"web.yaml": deployment("web", image=image),
               "api.yaml": deployment("api", image="nginx:1.27")})
    app = refreshed(make_app(repo, automated=True))
    assert kinds(app) == [] and app.sync_status == "Synced"
    assert image_of(app) == image and image_of(app, "api") == "nginx:1.27"


def test_a_registry_that_refuses_connections_does_not_block(repo, make_app, local,  # noqa: F811
                                                            registry):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    Registry.objects.create(name="down", url=f"http://127.0.0.1:{port}", username="u",
                            password="secret-pw-never-shown")
    down_image = f"127.0.0.1:{port}/team/web:1.0"
    missing = f"{registry.host}/guard/also-missing:2"
    repo.push({"web.yaml": deployment("web", image=down_image)})
    app = refreshed(make_app(repo, automated=True))
    [unchecked] = app.conditions
    assert unchecked["type"] == "ImageCheckFailed"
    assert unchecked["message"].startswith(
        f"could not check image {down_image} in registry down: cannot reach down")
    assert "secret-pw" not in unchecked["message"]
    assert image_of(app) == down_image and app.operations.get().automated

    # Blind on one registry, the guard still sees the other: a missing image there blocks.
    repo.push({"web.yaml": deployment("web", image=down_image),
               "api.yaml": deployment("api", image=missing)}, message="add api")
    app = refreshed(app)
    assert sorted(kinds(app)) == ["ImageCheckFailed", "MissingImage"]
    assert image_of(app, "api") is None and app.operations.count() == 1


def test_the_guard_can_be_turned_off(repo, make_app, local, registry, settings):  # noqa: F811
    settings.GITOPS_UI_IMAGE_GUARD = False
    image = f"{registry.host}/guard/not-there:1"
    repo.push({"web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo, automated=True))
    assert kinds(app) == [] and image_of(app) == image
