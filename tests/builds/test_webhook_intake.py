"""Tag pushes on the real webhook endpoint (PostgreSQL, Redis): a tag matching a rule queues a
build and answers at once; each bad input is refused with its status and queues nothing; a
delivery repeated (GitLab retries) starts one build."""
import json
import uuid

import pytest

from apps.builds.models import Build
from tests.localstack.process import free_port

from .conftest import WEBHOOK_SECRET, build_jobs, post_tag_push, tag_push

pytestmark = pytest.mark.django_db(transaction=True)
SHA = "a1" * 20


def test_a_matching_tag_queues_one_build_of_the_tagged_commit(client, world, builds_queue):
    answer = post_tag_push(client, tag_push(world.service, "build-1.2.0", SHA),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 202, answer.content
    build = Build.objects.get()
    assert answer.json()["builds"] == [build.pk]
    assert (build.status, build.action, build.sha, build.tag, build.trigger) == \
        ("queued", "build", SHA, "build-1.2.0", "webhook")
    # The commit is checkout_sha, not `after` (an annotated tag's own object).
    assert build.image == f"{world.registry.host}/team/img{world.repo.pk}:1.2.0"
    assert build_jobs(builds_queue) == [(build.pk,)]


def test_a_push_tag_queues_a_push_and_other_tags_queue_nothing(client, world, builds_queue):
    assert post_tag_push(client, tag_push(world.service, "push-2.0", SHA)).json()["builds"]
    assert Build.objects.get().action == "push"
    for tag in ("v2.0", "release-build-1", "PUSH-1"):
        answer = post_tag_push(client, tag_push(world.service, tag, SHA))
        assert answer.status_code == 202 and answer.json()["builds"] == []
    assert Build.objects.count() == 1 and len(build_jobs(builds_queue)) == 1


@pytest.mark.parametrize("header", ["HTTP_X_GITLAB_EVENT_UUID", "HTTP_IDEMPOTENCY_KEY"])
def test_a_repeated_delivery_starts_one_build(client, world, builds_queue, header):
    delivery = str(uuid.uuid4())
    body = tag_push(world.service, "build-3", SHA)
    first = post_tag_push(client, body, **{header: delivery})
    again = post_tag_push(client, body, **{header: delivery})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Build.objects.count() == 1 and len(build_jobs(builds_queue)) == 1


def test_the_same_tag_and_commit_again_without_a_delivery_id_finds_the_same_build(
        client, world, builds_queue):
    body = tag_push(world.service, "build-4", SHA)
    ids = {tuple(post_tag_push(client, body).json()["builds"]) for _ in range(3)}
    assert len(ids) == 1 and Build.objects.count() == 1
    assert len(build_jobs(builds_queue)) == 1


def test_tag_rules_are_refused_without_a_webhook_secret(client, world, builds_queue, settings):
    settings.GITOPS_UI_WEBHOOK_SECRET = ""
    settings.GITOPS_UI_WEBHOOK_OPEN = True  # even in open mode: a build needs a signed hook
    world.repo.webhook_secret = ""
    world.repo.save()
    refused = post_tag_push(client, tag_push(world.service, "build-1", SHA), token=None)
    assert refused.status_code == 403
    assert "must carry a secret" in refused.json()["detail"]
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []
    # A tag no rule matches is a plain refresh, accepted in open mode as before.
    plain = post_tag_push(client, tag_push(world.service, "v1", SHA), token=None)
    assert plain.status_code == 202 and plain.json()["builds"] == []


def test_a_wrong_token_is_refused_and_queues_nothing(client, world, builds_queue):
    for token in ("guess", None):
        refused = post_tag_push(client, tag_push(world.service, "build-1", SHA), token=token)
        assert refused.status_code == 403, refused.content
        assert WEBHOOK_SECRET not in refused.content.decode()
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []


def test_a_deleted_tag_starts_nothing(client, world, builds_queue):
    answer = post_tag_push(client, tag_push(world.service, "build-1", None))
    assert answer.status_code in (200, 202) and answer.json().get("builds", []) == []
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []


@pytest.mark.parametrize("checkout_sha", ["not-a-sha", "abc", 42, ["a" * 40]])
def test_a_payload_without_a_usable_commit_starts_nothing(client, world, builds_queue,
                                                          checkout_sha):
    body = tag_push(world.service, "build-1", SHA)
    body["checkout_sha"] = checkout_sha
    answer = post_tag_push(client, body)
    assert answer.status_code == 202 and answer.json()["builds"] == []
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []


def test_malformed_bodies_are_refused(client, world, builds_queue):
    bad_ref = tag_push(world.service, "build-1", SHA)
    bad_ref["ref"] = "build-1"
    assert post_tag_push(client, bad_ref).status_code == 400
    assert post_tag_push(client, "{not json").status_code == 400
    no_project = tag_push(world.service, "build-1", SHA)
    del no_project["project"]
    assert post_tag_push(client, no_project).status_code == 400
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []


def test_a_body_over_the_limit_is_refused(client, world, builds_queue, settings):
    body = tag_push(world.service, "build-1", SHA)
    body["commits"] = [{"message": "x" * 1000}] * (settings.GITOPS_UI_MAX_BODY_BYTES // 1000 + 1)
    answer = post_tag_push(client, json.dumps(body))
    assert answer.status_code == 413
    assert Build.objects.count() == 0 and build_jobs(builds_queue) == []


def test_redis_down_answers_503_and_leaves_no_build_behind(client, world, settings):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**config, "URL": dead}
                          for name, config in settings.RQ_QUEUES.items()}
    answer = post_tag_push(client, tag_push(world.service, "build-1", SHA),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 503
    assert Build.objects.count() == 0
