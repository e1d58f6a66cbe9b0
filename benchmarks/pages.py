"""pages: server time of the dashboard's busiest pages with 1,000 applications (issue 12).

Client-side wall time of each request on loopback against the launcher's web server (uvicorn,
one process): the application list page signed in, the list API with a token; then the same
with 50 concurrent readers while /healthz is probed every 0.2 s; and the page of the big app
(1,000 resources) when big-app ran in the same invocation. A `Server-Timing` header, if the
project ever sends one, is recorded next to the wall time. Last, in headless Chromium on an
application's page: the delay from a status change published as a worker publishes it to the
message in the browser, and to the page showing the new status (live_delay()).
"""
from __future__ import annotations

import os
import random
import secrets
import threading
import time
from datetime import datetime, timezone

import requests

from . import workload
from .scenarios import Context, cpu_delta, summary, wait_idle
from .system import log

PREFIX = "page-"
FOLDER = "pages/shared"
USERNAME = "bench-pages"
# Targets of issue 12, printed next to the figures by report.py.
TARGETS = {"p50_ms": 100, "p95_ms": 300, "concurrent_p95_ms": 300, "healthz_ms": 100}
# Statuses the list shows as badges, in proportions a busy dashboard might have.
STATUSES = ([("Synced", "Healthy")] * 14 + [("OutOfSync", "Healthy"), ("OutOfSync", "Progressing"),
            ("Synced", "Degraded"), ("Unknown", "Missing"), ("Synced", "Progressing")])


def _resources(name: str, sync: str, health: str) -> list[dict]:
    """What reconcile.resource_summary saves for the 10 objects of workload.app_files."""
    rows = [("apps", "Deployment", "web"), ("", "Service", "web")] + \
        [("", "ConfigMap", f"cfg-{i}") for i in range(workload.CONFIGMAPS)]
    return [{"group": g, "kind": k, "namespace": name, "name": n,
             "status": sync if i == 0 else "Synced", "health": health if i == 0 else "Healthy",
             "health_message": "", "requires_pruning": False, "differences": [], "error": ""}
            for i, (g, k, n) in enumerate(rows)]


def seed(ctx: Context, n: int) -> list[str]:
    """n application rows with the statuses a reconciled app has, and one history entry each.

    They must cost the launcher's workers nothing while the pages are measured, so that only
    the web server is timed: rows are bulk-created (create_application would queue a refresh
    each); they point at the bench cluster, which answers (a cluster that does not answer
    would have the reconciler rewrite all 1,000 as unreachable every pass); reconciled_at is
    far in the future (never due for the reconciler); automated sync is off; and the revision
    is a commit sha, which no push or poll of the bench repository moves (tracks_ref)."""
    from apps.applications.models import Application, HistoryEntry, Project
    from apps.clusters.models import Cluster
    from apps.repositories.models import Repository

    ctx.repo.write(workload.app_files("shared", FOLDER))
    sha = ctx.repo.commit_and_push("pages: one shared folder for the list's applications")
    workload.create_apps([], ctx.repo, ctx.git, ctx.kube)  # repository, cluster, project rows
    repository = Repository.objects.get(url=ctx.repo.url)
    cluster = Cluster.objects.get(name="bench")
    project = Project.objects.get(name="default")
    never_due = datetime(2999, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(12)
    names = [f"{PREFIX}{i:04d}" for i in range(n)]
    rows = []
    for name in names:
        sync, health = rng.choice(STATUSES)
        rows.append(Application(
            name=name, project=project, repository=repository, cluster=cluster, namespace=name,
            path=FOLDER, revision=sha, automated=False, prune=True,
            sync_options=["CreateNamespace=true"], sync_status=sync, health_status=health,
            health_message="" if health == "Healthy" else f"Deployment web: {health.lower()}",
            target_sha=sha, synced_sha=sha if sync == "Synced" else "",
            resources=_resources(name, sync, health), reconciled_at=never_due))
    Application.objects.bulk_create(rows, batch_size=500)
    apps = Application.objects.filter(name__in=names).only("id", "name")
    HistoryEntry.objects.bulk_create(
        [HistoryEntry(application=a, sha=sha, revision=sha, source={"path": FOLDER},
                      deployed_by="bench") for a in apps], batch_size=500)
    return names


def _user():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(username=USERNAME).first()
    password = secrets.token_urlsafe(16)
    if user is None:
        user = User.objects.create_superuser(USERNAME, f"{USERNAME}@example.com", password)
    else:
        user.set_password(password)
        user.save()
    return user, password


def sign_in(base_url: str, username: str, password: str) -> requests.Session:
    """A browser's way in: the login form, its CSRF token, the session cookie."""
    session = requests.Session()
    session.get(f"{base_url}/login/", timeout=30).raise_for_status()
    response = session.post(f"{base_url}/login/", timeout=30, allow_redirects=False, data={
        "username": username, "password": password,
        "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})
    if response.status_code != 302:
        raise RuntimeError(f"signing in answered {response.status_code}, not a redirect")
    return session


def session_cookie(user) -> tuple[str, str]:
    """A Django session of its own for a reader (what signing in creates), without paying the
    password hash on the server 50 times while nothing is measured yet."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    # Named: the first backend listed (axes) signs no one in from a session.
    client.force_login(user, backend="apps.core.access.AuthenticationBackend")
    return settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value


def timed_get(session: requests.Session, url: str, **kwargs) -> tuple[float, float | None]:
    """Wall seconds of one GET (body read), and the Server-Timing total in ms if sent."""
    t0 = time.perf_counter()
    response = session.get(url, timeout=60, allow_redirects=False, **kwargs)
    _ = response.content
    wall = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return wall, _server_timing_ms(response.headers.get("Server-Timing", ""))


def _server_timing_ms(header: str) -> float | None:
    total = None
    for metric in filter(None, (m.strip() for m in header.split(","))):
        for part in metric.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key == "dur":
                try:
                    total = (total or 0.0) + float(value)
                except ValueError:
                    pass
    return total


def _ms(values: list[float]) -> dict:
    return {k: (round(v * 1000, 1) if isinstance(v, float) else v) for k, v in summary(values).items()}


def sequential(session: requests.Session, url: str, count: int, **kwargs) -> dict:
    timed_get(session, url, **kwargs)  # warm-up: templates, first query plans, connection
    walls, server = [], []
    for _ in range(count):
        wall, st = timed_get(session, url, **kwargs)
        walls.append(wall)
        if st is not None:
            server.append(st / 1000)
    return {"wall_ms": _ms(walls), "server_timing_ms": _ms(server) if server else None}


def concurrent(base_url: str, user, token: str, readers: int, seconds: float) -> dict:
    """`readers` threads, each with its own HTTP session and Django session, alternating the
    list page and the list API back to back for `seconds`; /healthz probed every 0.2 s."""
    page, api = f"{base_url}/applications/", f"{base_url}/api/applications/"
    sessions = []
    for _ in range(readers):
        s = requests.Session()
        s.cookies.set(*session_cookie(user))
        sessions.append(s)
    times = {"page": [], "api": [], "healthz": []}
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    start = threading.Barrier(readers + 1)

    def reader(i: int, s: requests.Session) -> None:
        start.wait()
        turn = i % 2
        while not stop.is_set():
            which = ("page", "api")[turn]
            turn ^= 1
            try:
                if which == "page":
                    wall, _ = timed_get(s, page)
                else:
                    wall, _ = timed_get(s, api, headers={"Authorization": f"Token {token}"})
            except Exception as exc:  # counted and reported, the others go on
                with lock:
                    errors.append(f"{which}: {exc}")
                continue
            with lock:
                times[which].append(wall)

    threads = [threading.Thread(target=reader, args=(i, s), daemon=True)
               for i, s in enumerate(sessions)]
    timed_get(sessions[0], page)  # a reader's session signs it in (else: an error, at once)
    for t in threads:
        t.start()
    probe = requests.Session()
    start.wait()
    began = time.monotonic()
    t_end = began + seconds
    while time.monotonic() < t_end:
        tick = time.monotonic()
        try:
            times["healthz"].append(timed_get(probe, f"{base_url}/healthz")[0])
        except Exception as exc:
            errors.append(f"healthz: {exc}")
        time.sleep(max(0.0, 0.2 - (time.monotonic() - tick)))
    stop.set()
    for t in threads:
        t.join(90)
    elapsed = time.monotonic() - began  # the readers' last requests end after `seconds`
    done = len(times["page"]) + len(times["api"])
    return {"readers": readers, "seconds": seconds, "page_ms": _ms(times["page"]),
            "api_ms": _ms(times["api"]), "healthz_ms": _ms(times["healthz"]),
            "requests_per_s": round(done / elapsed, 1), "errors": len(errors),
            "first_errors": errors[:5]}


def wait_quiet(ctx: Context, window: float = 2.0, busy: float = 0.1, timeout: float = 120) -> float:
    """Seconds until the launcher and the cluster together use less than `busy` of a core over
    `window` seconds. A launcher started right after a first sync still takes in its
    Deployments settling (watch events, health refreshes) for a while: readers measured then
    would time the engine's catching up, not the web server."""
    began = time.monotonic()
    watched = ("launcher", "kube-apiserver", "cluster-other")
    while time.monotonic() - began < timeout:
        before = ctx.system.cpu()
        time.sleep(window)
        after = ctx.system.cpu()
        if sum(after.get(k, 0) - before.get(k, 0) for k in watched) < busy * window:
            break
    waited = round(time.monotonic() - began, 1)
    log(f"pages: launcher and cluster quiet after {waited} s")
    return waited


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(ctx: Context, apps: int = 1000, count: int = 100, readers: int = 50,
        seconds: float = 20, big_app: str | None = None, events: int = 20) -> dict:
    from apps.accounts import services as accounts
    from apps.applications.models import Application

    base = ctx.system.base_url
    missing = apps - Application.objects.count()  # the other scenarios' apps count too
    if missing > 0:
        log(f"pages: {len(seed(ctx, missing))} application rows created")
    total = Application.objects.count()
    wait_idle()
    user, password = _user()
    _, token = accounts.create_api_token(user)
    session = sign_in(base, user.get_username(), password)
    out = {"apps_in_database": total, "how": "client wall time on loopback, uvicorn (launcher)",
           "targets": TARGETS}
    out["list_page"] = sequential(session, f"{base}/applications/", count)
    out["list_api"] = sequential(requests.Session(), f"{base}/api/applications/", count,
                                 headers={"Authorization": f"Token {token}"})
    log(f"pages: list page p50 {out['list_page']['wall_ms']['p50']} ms, API p50 "
        f"{out['list_api']['wall_ms']['p50']} ms ({total} apps); {readers} readers next")
    out["quiet_after_s"] = wait_quiet(ctx)
    cpu0, own0 = ctx.system.cpu(), _own_cpu()
    out["concurrent"] = concurrent(base, user, token, readers, seconds)
    # The readers' CPU (this process alone; system.cpu()'s "bench-process" is its whole tree,
    # launcher and stack included) competes with the web server for the 2 cores.
    out["concurrent"]["cpu_s"] = {**cpu_delta(cpu0, ctx.system.cpu()),
                                  "readers": round(_own_cpu() - own0, 2)}
    c = out["concurrent"]
    log(f"pages: {readers} readers: page p95 {c['page_ms']['p95']} ms, API p95 "
        f"{c['api_ms']['p95']} ms, /healthz p95 {c['healthz_ms']['p95']} ms, "
        f"{c['requests_per_s']} req/s, {c['errors']} errors")
    big = Application.objects.filter(name=big_app).first() if big_app else None
    if big is None:
        out["big_app_page"] = {"skipped": "big-app did not run in this invocation"}
    else:
        detail = sequential(session, f"{base}/applications/{big.name}/", min(count, 30))
        out["big_app_page"] = {"app": big.name, "resources": len(big.resources or []), **detail}
        log(f"pages: page of {big.name} ({len(big.resources or [])} resources) p50 "
            f"{detail['wall_ms']['p50']} ms")
    out["live_delay"] = live_delay(base, user, events)
    d = out["live_delay"]
    if "skipped" not in d:
        log(f"pages: status published → in the browser p50 {d['message_ms']['p50']} ms, "
            f"page updated p50 {d['page_updated_ms']['p50']} ms ({d['events']} events)")
    # The seeded rows must have stayed out of the workers' way (see seed()).
    out["seeded_apps_refreshed"] = Application.objects.filter(
        name__startswith=PREFIX, reconciled_at__year__lt=2999).count()
    return out


# --- status change → browser ---------------------------------------------------------------------
CHROMIUM = os.environ.get("GITOPS_UI_CHROMIUM", "/usr/bin/chromium")
# Runs in the page before its own scripts: the time each published event reaches the page
# (htmx's websocket extension hands it over), and the time the sync badge first shows the
# status awaited. performance.timeOrigin + now(): the wall clock the bench process reads too.
RECORDER = """
window.__bench = {arrived: {}, expected: null, shownAt: null};
const now = () => performance.timeOrigin + performance.now();
document.addEventListener("htmx:wsBeforeMessage", (e) => {
  try { const ev = JSON.parse(e.detail.message);
        if (ev.bench_seq !== undefined) window.__bench.arrived[ev.bench_seq] = now(); } catch (err) {}
}, true);
new MutationObserver(() => {
  const b = window.__bench;
  if (b.expected && b.shownAt === null &&
      document.querySelector(`#app-status [title="sync: ${b.expected}"]`)) b.shownAt = now();
}).observe(document, {childList: true, subtree: true});
"""


def live_delay(base_url: str, user, count: int = 20) -> dict:
    """Open one seeded application's page in headless Chromium (Debian's, as the browser tests
    do), then `count` times: write a new sync status and publish it with apps/core/events.py as
    the engine does after a refresh (reconcile.save_status), stamped with the time of sending.
    Measured in the browser: sent → the message reaches the page, and sent → the page shows the
    new status (the page fetches its live fragment again, after htmx's 200 ms debounce)."""
    if not os.path.exists(CHROMIUM):
        return {"skipped": f"no Chromium at {CHROMIUM}"}
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import sync_playwright

    from apps.applications.models import Application

    app = Application.objects.filter(name__startswith=PREFIX).order_by("name").first()
    if app is None:
        return {"skipped": "no seeded application"}
    # The worker's side runs on a thread of its own: Playwright keeps an event loop running in
    # this one, where neither the ORM nor async_to_sync (publish) may run.
    worker = ThreadPoolExecutor(1)
    worker.submit(_set_status, app.pk, "Synced", None).result()
    name, value = session_cookie(user)
    messages, shown = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(base_url=base_url)
            context.add_cookies([{"name": name, "value": value, "url": base_url}])
            page = context.new_page()
            page.add_init_script(RECORDER)
            page.goto(f"/applications/{app.name}/")
            page.wait_for_selector('.live-root[data-live="on"]', timeout=30_000)
            for i in range(count):
                status = "OutOfSync" if i % 2 == 0 else "Synced"
                page.evaluate("s => { window.__bench.expected = s; window.__bench.shownAt = null; }",
                              status)
                sent = worker.submit(_set_status, app.pk, status, i).result()
                page.wait_for_function("() => window.__bench.shownAt !== null", timeout=15_000)
                arrived, shown_at = page.evaluate(
                    "i => [window.__bench.arrived[i], window.__bench.shownAt]", i)
                messages.append((arrived - sent) / 1000)
                shown.append((shown_at - sent) / 1000)
                page.wait_for_timeout(300)  # the page settles before the next change
        finally:
            browser.close()
            worker.submit(_set_status, app.pk, "Synced", None).result()
            worker.shutdown()
    return {"app": app.name, "events": count, "how": "headless Chromium, the app page's websocket",
            "message_ms": _ms(messages), "page_updated_ms": _ms(shown)}


def _set_status(app_pk: int, sync: str, seq: int | None) -> float | None:
    """What a worker does when a refresh finds a new sync status: write it, publish it (here
    numbered `seq` and stamped with the time of sending, in ms since the epoch). Returns that
    time; with no `seq`, only writes."""
    from django.db import close_old_connections

    from apps.applications.models import Application
    from apps.applications.reconcile import status_event
    from apps.core.events import group_for, publish as send

    close_old_connections()
    Application.objects.filter(pk=app_pk).update(sync_status=sync)
    if seq is None:
        return None
    app = Application.objects.get(pk=app_pk)
    sent = time.time() * 1000
    send(group_for("application", app_pk), {"type": "application.status", **status_event(app),
                                            "bench_seq": seq})
    return sent
