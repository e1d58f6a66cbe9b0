"""Outgoing webhooks per project: sync failed, health degraded, deployed, as generic JSON or a
Slack message, delivered by a worker job to a real HTTP server on loopback, retried, failures
visible through the API; the URL (a Slack URL is a credential) never shown. On PostgreSQL and
Redis."""
import json

import pytest
from django.test import Client, override_settings

from apps.applications import reconcile, services as applications
from apps.audit.models import AuditEntry
from apps.notifications import services
from apps.notifications.models import Delivery, Webhook
from tests.audit.conftest import client_for
from tests.notifications.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def hook(project, url, **fields) -> Webhook:
    return services.save_webhook(Webhook(project=project, name=fields.pop("name", "team"),
                                         url=url, **fields))


def test_a_failed_sync_is_posted_as_json(world, receiver, default_queue, sync_queue):
    hook(world.project, receiver.url)
    # The repository cannot be reached: the sync really runs, and fails.
    world.repo.url = "http://127.0.0.1:9/nowhere.git"
    world.repo.save()
    op = applications.request_sync(world.app, enqueue=False)
    applications.run_operation(op.pk)
    op.refresh_from_db()
    assert op.phase == "Failed"
    run_jobs(default_queue)
    [request] = receiver.requests
    assert request["path"] == "/hooks/T0KEN-in-the-path"
    assert request["headers"]["X-GitOps-UI-Event"] == "sync_failed"
    body = request["body"]
    assert (body["event"], body["application"], body["project"], body["operation"]) == (
        "sync_failed", "shop", "default", op.pk)
    assert body["message"] == op.message and body["phase"] == "Failed"
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)


def test_degraded_and_deployed_are_announced_once_each(world, receiver, default_queue):
    hook(world.project, receiver.url, kind="slack")
    app = world.app  # Synced and Healthy, nothing deployed by us yet
    reconcile.save_status(app, health_status="Degraded", health_message="Back-off pulling image")
    reconcile.save_status(app, health_message="still failing")  # stays Degraded: no new event
    sha = "b" * 40
    reconcile.save_status(app, health_status="Healthy", health_message="", synced_sha=sha)
    reconcile.save_status(app, sync_status="OutOfSync")
    reconcile.save_status(app, sync_status="Synced")  # the same revision: announced already
    run_jobs(default_queue)
    texts = [b["text"] for b in receiver.bodies]
    assert texts == [":warning: *shop* (default) is Degraded: Back-off pulling image",
                     f":white_check_mark: *shop* (default) deployed `{sha[:12]}`: Healthy"]


def test_events_not_chosen_and_disabled_webhooks_send_nothing(world, receiver, default_queue):
    hook(world.project, receiver.url, name="deploys", events=["deployed"])
    hook(world.project, receiver.url, name="off", enabled=False)
    reconcile.save_status(world.app, health_status="Degraded")
    run_jobs(default_queue)
    assert receiver.requests == [] and not Delivery.objects.exists()


@override_settings(GITOPS_UI_NOTIFY_BACKOFF=0, GITOPS_UI_NOTIFY_ATTEMPTS=3)
def test_a_failing_receiver_is_retried_until_it_answers(world, receiver, default_queue):
    hook(world.project, receiver.url)
    receiver.answers = [500, 503]
    reconcile.save_status(world.app, health_status="Degraded")
    run_jobs(default_queue)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    assert delivery.last_error == "127.0.0.1 answered HTTP 500"
    for _ in range(2):
        assert services.retry_due() == 1  # the reconciler's periodic task
        run_jobs(default_queue)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 3, "")
    assert len(receiver.requests) == 3
    assert services.retry_due() == 0


@override_settings(GITOPS_UI_NOTIFY_BACKOFF=0, GITOPS_UI_NOTIFY_ATTEMPTS=2)
def test_failures_are_visible_through_the_api_without_the_url(team, world, receiver,
                                                              default_queue):
    webhook = hook(world.project, receiver.url)
    unreachable = hook(world.project, "http://127.0.0.1:9/hooks/s3cret-T0KEN", name="gone")
    receiver.answers = [500, 500]
    reconcile.save_status(world.app, health_status="Degraded")
    run_jobs(default_queue)
    services.retry_due()
    run_jobs(default_queue)
    viewer = client_for(team["viewer"])
    failed = viewer.get("/api/deliveries/", {"state": "failed"}).json()["results"]
    assert sorted((d["webhook"], d["attempts"], d["last_status"], d["last_error"])
                  for d in failed) == [
        ("gone", 2, None, "cannot connect to 127.0.0.1"),
        ("team", 2, 500, "127.0.0.1 answered HTTP 500")]
    listed = viewer.get("/api/webhooks/").json()["results"]
    assert {(w["name"], w["host"], w["failing"]) for w in listed} == {
        ("team", "127.0.0.1", 1), ("gone", "127.0.0.1", 1)}
    everything = json.dumps([listed, failed, viewer.get(f"/api/webhooks/{webhook.pk}").json(),
                             list(AuditEntry.objects.values_list("details", flat=True))])
    assert "T0KEN" not in everything
    # Another project's member sees none of it.
    outsider = client_for(team["outsider"])
    assert outsider.get("/api/deliveries/").json()["results"] == []
    assert outsider.get(f"/api/webhooks/{unreachable.pk}").status_code == 404
    # A platform admin sends a failed one again, once the receiver is fixed.
    to_team = Delivery.objects.get(webhook=webhook)
    assert viewer.post(f"/api/deliveries/{to_team.pk}/retry").status_code == 403
    admin = Client()
    admin.force_login(_admin())
    again = admin.post(f"/api/deliveries/{to_team.pk}/retry")
    assert again.status_code == 202 and again.json()["state"] == "pending"
    run_jobs(default_queue)
    to_team.refresh_from_db()
    assert (to_team.state, to_team.attempts, to_team.last_status) == ("delivered", 1, 200)
    assert AuditEntry.objects.filter(action="webhook.retry", actor_name="admin").count() == 1


def test_only_platform_admins_manage_webhooks(team, world):
    body = {"project": "default", "name": "chat", "kind": "slack",
            "url": "https://hooks.slack.example/services/T0KEN"}
    viewer = client_for(team["viewer"])
    assert viewer.post("/api/webhooks/", body, content_type="application/json").status_code == 403
    admin = Client()
    admin.force_login(_admin())
    bad = admin.post("/api/webhooks/", {**body, "url": "file:///etc/passwd"},
                     content_type="application/json")
    assert bad.status_code == 400 and "http(s) URL" in bad.json()["detail"]
    assert "passwd" not in bad.content.decode()
    created = admin.post("/api/webhooks/", {**body, "events": ["sync_failed", "deployed"]},
                         content_type="application/json")
    assert created.status_code == 201, created.content
    assert "url" not in created.json() and created.json()["host"] == "hooks.slack.example"
    assert Webhook.objects.get().url == body["url"]
    entry = AuditEntry.objects.get(action="webhook.created")
    assert entry.details["url"] == "(set)" and entry.project_name == "default"
    unknown = admin.patch(f"/api/webhooks/{created.json()['id']}", {"events": ["party"]},
                          content_type="application/json")
    assert unknown.status_code == 400


def _admin():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_superuser": True, "is_staff": True})
    return user


def test_the_admin_keeps_the_url_secret(world):
    admin = Client()
    admin.force_login(_admin())
    url = "https://hooks.slack.example/services/ADMIN-T0KEN"
    added = admin.post("/admin/notifications/webhook/add/", {
        "project": world.project.pk, "name": "chat", "kind": "slack", "url": url,
        "events": '["deployed"]', "enabled": "on"})
    assert added.status_code == 302, added.content.decode()[-3000:]
    webhook = Webhook.objects.get()
    assert (webhook.url, webhook.host, webhook.events) == (url, "hooks.slack.example", ["deployed"])
    page = admin.get(f"/admin/notifications/webhook/{webhook.pk}/change/").content.decode()
    assert "ADMIN-T0KEN" not in page and "hooks.slack.example" in page
    # Saved again with the URL left empty: kept.
    kept = admin.post(f"/admin/notifications/webhook/{webhook.pk}/change/", {
        "project": world.project.pk, "name": "chat", "kind": "json", "url": "",
        "events": '["deployed"]', "enabled": "on"})
    assert kept.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.url, webhook.kind) == (url, "json")
    assert list(AuditEntry.objects.filter(object_type="webhook").order_by("id")
                .values_list("action", "details")) == [
        ("webhook.created", {"project": "default", "name": "chat", "kind": "slack",
                             "url": "(set)", "events": ["deployed"], "enabled": True}),
        ("webhook.updated", {"changed": {"kind": {"from": "slack", "to": "json"}}})]
