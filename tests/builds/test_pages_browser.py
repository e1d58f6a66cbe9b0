"""The build pages in a real browser (Debian's Chromium through Playwright) against the web
process `make run` starts (uvicorn, websockets) and a real build worker: the log of a running
build appears line by line without a reload, the status follows, and a build is canceled from
its page. Screenshots go to $TMPDIR/gitops-ui-screenshots."""
import pytest

from apps.builds import services
from apps.builds.models import Build
from tests.browser.conftest import (browser, open_page, platform, screenshot,  # noqa: F401
                                    make_user)

from .conftest import dockerfile, start_build_worker

pytestmark = pytest.mark.django_db(transaction=True)


def stop(worker):
    if worker.poll() is None:
        worker.kill()
    worker.wait()


def test_a_running_build_streams_its_log_and_can_be_canceled(
        world, builds_queue, buildah, open_page, screenshot, make_user, registry):
    operator = make_user("builder", role="operator", project=world.project)
    sha = world.service.commit({"Dockerfile": dockerfile(
        buildah, "RUN for i in 1 2 3 4 5 6; do echo line-$i; sleep 1; done")})
    build = services.start_build(world.rules["push"], "push-2.4.0", sha, trigger="webhook")
    page = open_page(operator)
    page.goto(f"/builds/{build.pk}/")
    page.wait_for_selector(".live-root[data-live=on]")
    worker = start_build_worker(burst=True)
    try:
        # Lines arrive over the websocket while buildah runs: no reload.
        page.wait_for_function("document.getElementById('build-log').textContent.includes('line-3')",
                               timeout=120_000)
        page.wait_for_selector("#build-status [data-build-status=running]")
        screenshot(page, "build-running")
        page.wait_for_selector("#build-status [data-build-status=succeeded]", timeout=120_000)
        log = page.text_content("#build-log")
        assert "line-6" in log and "pushed " in log and registry.password not in log
        assert log.count("line-1\n") == 1  # each chunk shown once
        assert Build.objects.get(pk=build.pk).digest in page.text_content("#build-digest")
        screenshot(page, "build-succeeded")
        assert worker.wait(60) == 0
    finally:
        stop(worker)

    slow = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo waiting; sleep 120")})
    second = services.start_build(world.rules["build"], "build-2.5.0", slow, trigger="webhook")
    page.goto(f"/builds/{second.pk}/")
    worker = start_build_worker(burst=True)
    try:
        page.wait_for_function(
            "document.getElementById('build-log').textContent.includes('waiting')", timeout=120_000)
        page.click("#cancel-build")
        page.wait_for_selector("#build-status [data-build-status=canceled]", timeout=30_000)
        screenshot(page, "build-canceled")
        assert worker.wait(60) == 0
    finally:
        stop(worker)

    page.goto("/builds/")
    rows = page.locator("tr[data-build]")
    assert rows.count() == 2
    assert page.locator(f"tr[data-build='{build.pk}'][data-status=succeeded]").count() == 1
    screenshot(page, "builds-list")
