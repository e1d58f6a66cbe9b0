"""Harbor's webhook intake (POST /api/webhook/harbor) with its documented PUSH_ARTIFACT payload,
against the real PostgreSQL and Redis: who may send it, which deliveries queue a write-back
(and what it carries), and that the token stays a secret. The write-back itself is tested in
tests/applications/test_writeback.py."""
import django_rq
import pytest
from django.db import connection
from django.test import Client

from apps.registries.models import Registry

pytestmark = pytest.mark.django_db(transaction=True)  # django_rq enqueues on commit

TOKEN = "hook-7f3e90aa-never-shown"
HOST = "harbor.example.com"
DIGEST = "sha256:" + "3f" * 32
URL = "/api/webhook/harbor"


def push(tag="1.3.0", digest=DIGEST, event="PUSH_ARTIFACT", occur_at=1764777600,
         repository="team/web") -> dict:
    namespace, _, name = repository.partition("/")
    return {"type": event, "occur_at": occur_at, "operator": "ci-robot",
            "event_data": {"resources": [{"digest": digest, "tag": tag,
                                          "resource_url": f"{HOST}/{repository}:{tag}"}],
                           "repository": {"date_created": 1764777000, "name": name,
                                          "namespace": namespace, "repo_full_name": repository,
                                          "repo_type": "private"}}}


@pytest.fixture
def queue():
    """The `sync` queue, empty, with no delivery remembered."""
    sync = django_rq.get_queue("sync")
    redis = django_rq.get_connection("sync")

    def clear():
        sync.empty()
        for key in redis.scan_iter("gitops-ui:webhook-delivery:*"):
            redis.delete(key)
    clear()
    yield sync
    clear()


@pytest.fixture
def harbor(db) -> Registry:
    return Registry.objects.create(name="harbor", kind=Registry.Kind.HARBOR,
                                   url=f"https://{HOST}", username="admin",
                                   password="pw-never-shown", webhook_token=TOKEN)


def send(payload, token=TOKEN, query="", **headers):
    if token is not None:
        headers["Authorization"] = token
    return Client().post(URL + query, payload, content_type="application/json", headers=headers)


def test_a_push_queues_one_write_back_per_tag(harbor, queue):
    response = send(push())
    assert response.status_code == 202, response.content
    assert response.json() == {"images": [f"{HOST}/team/web:1.3.0@{DIGEST}"]}
    [job] = queue.jobs
    assert job.func_name == "apps.applications.writeback_jobs.write_back"
    assert job.args == (f"{HOST}/team/web", "1.3.0", DIGEST)
    # Named by ?registry= too, with the token as a bearer token.
    response = send(push(tag="1.3.1"), token=f"Bearer {TOKEN}", query="?registry=harbor")
    assert response.status_code == 202 and queue.count == 2


def test_a_missing_or_wrong_token_is_refused_and_nothing_queued(harbor, queue):
    missing = send(push(), token=None)
    assert missing.status_code == 401
    wrong = send(push(), token="not-the-token")
    assert wrong.status_code == 401
    assert "does not match" in wrong.json()["detail"]
    assert queue.count == 0
    Registry.objects.filter(pk=harbor.pk).update(webhook_token="")
    closed = send(push(), token="")
    assert closed.status_code == 403 and "no webhook token" in closed.json()["detail"]
    assert queue.count == 0


def test_an_unknown_registry_is_404(harbor, queue):
    assert send(push(), query="?registry=elsewhere").status_code == 404
    other_host = push()
    other_host["event_data"]["resources"][0]["resource_url"] = "other.example.com/team/web:1.3.0"
    assert send(other_host).status_code == 404
    assert queue.count == 0


def test_other_events_and_untagged_pushes_queue_nothing(harbor, queue):
    for event in ("DELETE_ARTIFACT", "PULL_ARTIFACT", "SCANNING_COMPLETED"):
        response = send(push(event=event))
        assert response.status_code == 200 and "ignored" in response.json()["detail"]
    untagged = send(push(tag=None))
    assert untagged.status_code == 200 and untagged.json()["images"] == []
    assert queue.count == 0


def test_a_repeated_delivery_is_handled_once(harbor, queue):
    assert send(push()).status_code == 202
    again = send(push())
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert queue.count == 1
    assert send(push(occur_at=1764777999)).status_code == 202  # a later push of the same tag
    assert queue.count == 2


def test_bad_bodies_are_refused(harbor, queue):
    big = push()
    big["padding"] = "x" * 300_000
    assert send(big).status_code == 413
    assert Client().post(URL, "not json", content_type="application/json",
                         headers={"Authorization": TOKEN}).status_code == 400
    bad_tag = send(push(tag="bad tag!"))
    assert bad_tag.status_code == 400 and "tag" in bad_tag.json()["detail"]
    assert queue.count == 0


def test_the_webhook_token_is_write_only_and_encrypted(harbor, admin_client):
    shown = admin_client.get(f"/api/registries/{harbor.pk}/").json()
    assert shown["has_webhook_token"] is True and "webhook_token" not in shown
    assert TOKEN not in str(shown)
    changed = admin_client.patch(f"/api/registries/{harbor.pk}/", {"webhook_token": "new-one"},
                                 content_type="application/json")
    assert changed.status_code == 200 and "new-one" not in changed.content.decode()
    assert Registry.objects.get(pk=harbor.pk).webhook_token == "new-one"
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_token FROM registries_registry WHERE id = %s", [harbor.pk])
        stored = cursor.fetchone()[0]
    assert "new-one" not in stored
    page = admin_client.get(f"/admin/registries/registry/{harbor.pk}/change/").content.decode()
    assert "new-one" not in page
