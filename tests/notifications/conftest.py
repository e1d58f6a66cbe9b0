"""A real HTTP receiver on loopback for the outgoing webhooks, and the rows of the application
tests (world, team)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import django_rq
import pytest
from rq import SimpleWorker

from tests.applications.conftest import sync_queue, world  # noqa: F401  fixtures
from tests.audit.conftest import team  # noqa: F401  fixture


class Receiver:
    """Records each POST; answers with the statuses queued in `answers` (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": json.loads(self.rfile.read(length))})
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0KEN-in-the-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def default_queue():
    queue = django_rq.get_queue("default")
    queue.empty()
    yield queue
    queue.empty()


def run_jobs(queue) -> None:
    """What a worker does: every queued job, in this process."""
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
