"""The Django side on real parts: PostgreSQL, Redis, RQ workers and Channels."""
import os
import subprocess
import sys

import django_rq
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import override_settings

from apps.accounts.services import ensure_admin
from apps.core.consumers import SystemEventsConsumer
from gitops_ui.env import BASE_DIR
from tests.websockets import close_code

pytestmark = pytest.mark.django_db


def run_worker_burst(*queues):
    """Run a real RQ worker process until the queues are empty, as `make run` does."""
    result = subprocess.run([sys.executable, "manage.py", "rqworker", "--burst", *queues],
                            cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_the_suite_runs_on_postgresql():
    assert connection.vendor == "postgresql"


def test_readyz_reports_each_dependency(client):
    body = client.get("/readyz").json()
    assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_names_the_failing_dependency_without_its_password(client):
    with override_settings(REDIS_URL="redis://:hunter2secret@127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["redis"].startswith("ConnectionError")
    assert b"hunter2secret" not in response.content


def test_ensure_admin_creates_one_admin_once(django_user_model):
    password = ensure_admin("root")
    assert password and django_user_model.objects.get(username="root").check_password(password)
    assert ensure_admin("other") is None
    assert django_user_model.objects.filter(is_superuser=True).count() == 1


def test_pages_and_api_need_a_login(client):
    assert client.get("/").status_code == 302
    assert client.get("/").headers["Location"].startswith("/login/")
    assert client.post("/api/system/heartbeat").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)  # jobs are enqueued on commit
def test_heartbeat_job_runs_in_a_worker_and_reaches_the_websocket(admin_client, admin_user):
    def request_heartbeat_and_run_worker():
        response = admin_client.post("/api/system/heartbeat")
        assert response.status_code == 202
        assert django_rq.get_queue("default").count == 1
        run_worker_burst("default")
        assert django_rq.get_queue("default").count == 0

    async def scenario():
        communicator = WebsocketCommunicator(SystemEventsConsumer.as_asgi(), "/ws/system/")
        communicator.scope["user"] = admin_user
        connected, _ = await communicator.connect()
        assert connected
        try:
            await sync_to_async(request_heartbeat_and_run_worker)()
            return await communicator.receive_json_from(timeout=10)
        finally:
            await communicator.disconnect()

    event = async_to_sync(scenario)()
    assert event["type"] == "worker.heartbeat"
    assert event["pid"] != os.getpid()  # it came from the worker process
    assert set(event["queues"]) == {"default", "builds", "sync", "background"}


def test_websocket_refuses_anonymous_users():
    # 4401 (not signed in), after the handshake: the page then goes to the login page
    assert async_to_sync(close_code)(SystemEventsConsumer, "/ws/system/", AnonymousUser()) == 4401
