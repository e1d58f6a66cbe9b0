"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the web
process as `make run` starts it (uvicorn, websockets included) and a real RQ worker, both on the
test database and the stack's Redis, cluster and git server.

pytest-django's live_server serves no websockets, so the web process runs as a subprocess on a
free port. Screenshots of every page go to $TMPDIR/gitops-ui-screenshots (printed at the end).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from gitops_ui.env import BASE_DIR
from tests.waiting import until

CHROMIUM = os.environ.get("GITOPS_UI_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "gitops-ui-screenshots"
PASSWORD = "browser-pw-4b1f"


def pytest_configure(config):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_sep("-", f"browser screenshots: {SCREENSHOTS}")


def engine_queues() -> list[str]:
    """Every RQ queue but the builds', in priority order as the engine worker reads them."""
    from django.conf import settings

    return [name for name in ("sync", "background", "default") if name in settings.RQ_QUEUES]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _test_database_env() -> dict:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings",
            "PYTHONUNBUFFERED": "1", "GITOPS_UI_LOG_LEVEL": "WARNING"}


class Process:
    """A platform process started for the tests; its output is kept for failure reports."""

    def __init__(self, name: str, args: list[str], logdir: Path):
        self.log = logdir / f"{name}.log"
        self._file = open(self.log, "w")
        self.popen = subprocess.Popen(args, cwd=BASE_DIR, env=_test_database_env(),
                                      stdout=self._file, stderr=subprocess.STDOUT)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]

    def stop(self):
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._file.close()


@pytest.fixture(scope="module")
def platform(django_db_setup, django_db_blocker, redis_server, tmp_path_factory):
    """The web process (uvicorn) and one worker, on the test database, for one module (its
    worker would take other modules' jobs). Yields the base URL and the two processes."""
    logdir = tmp_path_factory.mktemp("platform")
    port = free_port()
    web = Process("web", [sys.executable, "-m", "apps.core.webserver", "-b", "127.0.0.1", "-p",
                          str(port), "gitops_ui.asgi:application"], logdir)
    worker = Process("worker", [sys.executable, "manage.py", "rqworker", "--worker-class",
                                "rq.worker.SimpleWorker", *engine_queues()], logdir)
    try:
        assert until(lambda: port_open(port), bool, timeout=60), web.tail()
        yield {"url": f"http://127.0.0.1:{port}", "web": web, "worker": worker}
    finally:
        web.stop()
        worker.stop()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module. Playwright's sync API keeps an event loop running in this
    thread while it lives: the ORM calls the tests make between browser steps are plain
    synchronous calls all the same (hence DJANGO_ALLOW_ASYNC_UNSAFE, for as long as it runs),
    and the tests of other modules must not find that loop (asyncio.run, async_to_sync)."""
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def open_page(browser, platform):
    """open_page(user, **context options) -> a signed-in page of a fresh browser context."""
    contexts = []

    def open_for(user, **options):
        options.setdefault("viewport", {"width": 1280, "height": 860})
        context = browser.new_context(base_url=platform["url"], **options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/applications/")
        return page

    yield open_for
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    """screenshot(page, name): a full-page PNG under SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, full_page: bool = True):
        page.wait_for_timeout(150)  # let the last swap settle (htmx's settle delay)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
    return take


@pytest.fixture
def make_user(django_user_model):
    def make(username, *, superuser=False, role=None, project=None):
        user = django_user_model.objects.create_user(username, password=PASSWORD,
                                                     is_superuser=superuser, is_staff=superuser)
        if role:
            from apps.applications.models import ProjectMember

            ProjectMember.objects.create(project=project, user=user, role=role)
        return user
    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test shows the tail of the web process's and the worker's logs."""
    outcome = yield
    report = outcome.get_result()
    platform = getattr(item, "funcargs", {}).get("platform")
    if report.failed and platform:
        for name in ("web", "worker"):
            report.sections.append((f"{name} process log (tail)", platform[name].tail()))


@pytest.fixture(scope="module", autouse=True)
def _leave_nothing_behind():
    """Watch caches this module's tests started in this process, and jobs they queued that no
    worker ran, end with the module: later modules count their own queues."""
    yield
    import django_rq

    from apps.applications import queueing
    from apps.clusters import services as clusters

    clusters.stop_all()
    connection = django_rq.get_connection("sync")
    for name in engine_queues():
        django_rq.get_queue(name).empty()
    for key in connection.scan_iter("gitops-ui:*queued:*"):
        connection.delete(key)
    queueing.forget_local_merges()
