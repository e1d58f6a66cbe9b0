"""The whole loop on real parts: a `push-1.2.0` tag → the image built with buildah and pushed to
the registry → the deploy repository's kustomization updated by a commit → the application
synced → the Deployment in the API server runs the new digest."""
import uuid

import pytest

from apps.applications.models import ImageUpdater
from apps.builds.models import Build
from apps.core.queues import job_queue
from tests.appstack import refreshed, run_worker
from tests.waiting import until
from tests.applications.test_writeback import image_of, kustomization, show
from tests.engine.manifests import deployment
from tests.registries.conftest import copy_image

from .conftest import dockerfile, post_tag_push, run_build_worker, tag_push

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def test_a_push_tag_ends_with_the_cluster_running_the_new_image_digest(
        client, world, builds_queue, buildah, registry, repo, make_app):  # noqa: F811
    job_queue("sync").empty()
    repository = f"team/img{world.repo.pk}"
    image = f"{registry.host}/{repository}"
    # Today the deploy repository runs 1.0.0 (in the registry: the missing-image guard checks).
    copy_image(registry, buildah.base_image, f"{repository}:1.0.0", "v2s2")
    repo.push({"app/kustomization.yaml": kustomization(image, "1.0.0"),
               "app/web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo, path="app", automated=True))
    assert image_of(app) == f"{image}:1.0.0"
    ImageUpdater.objects.create(application=app, image=image, constraint="^1.0")

    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo 1.2.0 > /version")})
    world.service.tag("push-1.2.0", sha)
    answer = post_tag_push(client, tag_push(world.service, "push-1.2.0", sha),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 202, answer.content
    run_build_worker()  # builds, then pushes; queues the write-back
    build = Build.objects.get(pk=answer.json()["builds"][0])
    assert build.status == "succeeded", build.log[-3000:]
    assert build.image == f"{image}:1.2.0" and build.digest.startswith("sha256:")

    run_worker()  # the engine: the write-back commit, the app's refresh, its automated sync

    assert "newTag: 1.2.0" in show(repo, "app/kustomization.yaml")
    assert image_of(app) == f"{image}:1.2.0@{build.digest}"
    # Synced by the sync; Healthy once KWOK has rolled the new pods out (the refresh of a
    # watch event may come after the burst worker stopped, so ask again until then).
    app = until(lambda: refreshed(app), lambda a: (a.sync_status, a.health_status) == (
        "Synced", "Healthy"), timeout=60)
