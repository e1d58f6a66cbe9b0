"""The measurements. Each returns a JSON-friendly dict; __main__ decides the order.

All of them run in the bench process, after System.setup_django(). The launcher (when running)
does the platform's own work: web (webhook), 2 RQ workers, the reconciler.
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import machine, workload
from .system import PROJECT_DIR, System, log

LATENCY_APP = "latency"
LATENCY_PATH = f"apps/{LATENCY_APP}"
BIG_APP = "big"


@dataclass
class Context:
    system: System
    repo: workload.BenchRepo
    args: object
    out_stem: Path  # bench-results/<date>: profiles are written next to the JSON
    bg_names: list[str] = field(default_factory=list)
    _engine: object = None

    @property
    def git(self):
        return self.system.get("git")

    @property
    def kube(self):
        return self.system.get("kube")

    @property
    def engine(self):
        """An engine Cluster client of its own (not the app runtime's), for polling objects."""
        if self._engine is None:
            from apps.engine.cluster import Cluster

            self._engine = Cluster.from_kubeconfig(self.kube.kubeconfig_text(), name="bench")
        return self._engine


# --- helpers -----------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "min": min(values, default=None), "p50": pct(values, 50),
            "p95": pct(values, 95), "max": max(values, default=None),
            "mean": statistics.fmean(values) if values else None}


def idle() -> bool:
    import django_rq

    from apps.applications.models import Operation

    queue = django_rq.get_queue("sync")
    return (queue.count == 0 and queue.started_job_registry.count == 0
            and not Operation.objects.filter(phase__in=Operation.ACTIVE).exists())


def wait_idle(timeout: float = 300, settle: float = 0.6) -> float:
    """Wait until no refresh or operation is queued or running, twice `settle` apart; return
    the perf_counter() at which idleness was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if idle():
            first = time.perf_counter()
            time.sleep(settle)
            if idle():
                return first
        time.sleep(0.05)
    log(f"warning: the workers were still busy after {timeout:.0f} s")
    return time.perf_counter()


def jobs_done() -> int:
    """Jobs the launcher's workers have finished so far (rq's per-worker counters)."""
    import django_rq
    from rq import Worker

    workers = Worker.all(connection=django_rq.get_queue("sync").connection)
    return sum(w.successful_job_count + w.failed_job_count for w in workers)


def cpu_delta(before: dict, after: dict) -> dict:
    return {k: round(after.get(k, 0) - before.get(k, 0), 2) for k in after}


def app_status(names: list[str], sha: str | None = None) -> dict:
    from django.db.models import Count

    from apps.applications.models import Application

    rows = Application.objects.filter(name__in=names).values("sync_status", "health_status") \
        .annotate(n=Count("id"))
    out = {f"{r['sync_status']}/{r['health_status']}": r["n"] for r in rows}
    if sha:
        out["at_sha"] = Application.objects.filter(name__in=names, synced_sha=sha).count()
    return out


def wait_synced(names: list[str], sha: str, timeout: float, label: str) -> tuple[float, list]:
    """Seconds until every app is Synced and Healthy at `sha`; and (t, done) samples."""
    from apps.applications.models import Application

    watch = machine.Stopwatch()
    samples, last_log = [], 0.0
    while True:
        done = Application.objects.filter(name__in=names, sync_status="Synced",
                                          health_status="Healthy", synced_sha=sha).count()
        samples.append((round(watch.elapsed, 2), done))
        if done == len(names):
            return watch.elapsed, samples
        if watch.elapsed > timeout:
            raise TimeoutError(f"{label}: {done}/{len(names)} Synced+Healthy after {timeout:.0f} s; "
                               f"{app_status(names, sha)}")
        if watch.elapsed - last_log > 10:
            last_log = watch.elapsed
            log(f"{label}: {done}/{len(names)} Synced+Healthy after {watch.elapsed:.0f} s")
        time.sleep(0.25)


def write_profile(ctx: Context, name: str, profiler: cProfile.Profile, top: int = 35) -> dict:
    path = Path(f"{ctx.out_stem}-{name}.prof")
    profiler.dump_stats(path)
    text = []
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
        text.append(f"### sorted by {order}\n{buf.getvalue()}")
    txt = path.with_suffix(".txt")
    txt.write_text("\n".join(text))
    return {"prof": str(path), "text": str(txt)}


# --- request counting (bench process only) -----------------------------------------------------
class Counter:
    """Counts, while active: HTTP requests to the API server made through the engine's
    Cluster.request (by kind), git commands the engine runs, and SQL queries of this thread."""

    def __init__(self):
        from apps.engine import cluster as cluster_mod
        from apps.engine.source import git as git_mod

        self.lock = threading.Lock()
        self.active = False
        self.http: dict[str, int] = {}
        self.git: dict[str, int] = {}
        self.sql = 0
        counter = self
        original_request = cluster_mod.Cluster.request
        original_run = git_mod._run

        def request(cluster_self, method, path, *, params=None, **kwargs):
            if counter.active:
                counter._count_http(method, params or {})
            return original_request(cluster_self, method, path, params=params, **kwargs)

        def run(argv, what, *a, **kw):
            if counter.active:
                with counter.lock:
                    counter.git[what] = counter.git.get(what, 0) + 1
            return original_run(argv, what, *a, **kw)

        cluster_mod.Cluster.request = request
        git_mod._run = run

    def _count_http(self, method: str, params: dict) -> None:
        if params.get("watch"):
            kind = "WATCH"
        elif method == "GET" and "limit" in params:
            kind = "LIST"
        elif method == "PATCH" and params.get("dryRun"):
            kind = "PATCH dry-run"
        elif method in ("PUT", "POST") and params.get("dryRun"):
            kind = f"{method} dry-run"
        else:
            kind = method
        with self.lock:
            self.http[kind] = self.http.get(kind, 0) + 1

    @contextmanager
    def window(self):
        from django.db import connection

        self.http, self.git, self.sql = {}, {}, 0

        def count_sql(execute, sql, params, many, context):
            self.sql += 1
            return execute(sql, params, many, context)

        self.active = True
        try:
            with connection.execute_wrapper(count_sql):
                yield self
        finally:
            self.active = False

    def snapshot(self) -> dict:
        return {"http_total": sum(self.http.values()), "http": dict(self.http),
                "lists": self.http.get("LIST", 0), "git": dict(self.git), "sql_queries": self.sql}


_counter: Counter | None = None


def counter() -> Counter:
    global _counter
    if _counter is None:
        _counter = Counter()
    return _counter


# --- 1. webhook → applied ---------------------------------------------------------------------
def setup_latency_app(ctx: Context) -> dict:
    ctx.repo.write(workload.app_files(LATENCY_APP, LATENCY_PATH))
    sha = ctx.repo.commit_and_push("latency app")
    watch = machine.Stopwatch()
    workload.create_apps([(LATENCY_APP, LATENCY_PATH)], ctx.repo, ctx.git, ctx.kube)
    wait_synced([LATENCY_APP], sha, 300, "latency app first sync")
    return {"first_sync_s": round(watch.elapsed, 2)}


def latency(ctx: Context, label: str, pushes: int) -> dict:
    """Commit+push a new value of one ConfigMap of the latency app, POST a GitLab push webhook,
    time until the value is in the cluster (GET every ~20 ms)."""
    engine = ctx.engine
    configmaps = engine.resource_for("v1", "ConfigMap")
    url = f"{ctx.system.base_url}/api/webhook/git"
    payload = {"object_kind": "push", "ref": "refs/heads/main",
               "project": {"git_http_url": ctx.repo.url},
               "repository": {"git_http_url": ctx.repo.url}}
    webhook_token = os.environ["GITOPS_UI_WEBHOOK_SECRET"]  # set by System.setup_django
    samples = []
    for i in range(1, pushes + 1):
        wait_idle()
        value = f"{label}-{i}-{time.time():.0f}"
        ctx.repo.write({f"{LATENCY_PATH}/configmap-0.yaml":
                        workload.configmap("cfg-0", LATENCY_APP, value)})
        cpu0 = ctx.system.cpu()
        push_watch = machine.Stopwatch()
        ctx.repo.commit_and_push(f"{label} push {i}")
        push_s = push_watch.elapsed
        t0 = time.perf_counter()
        response = requests.post(url, json=payload, headers={"X-Gitlab-Event": "Push Hook",
                                                           "X-Gitlab-Token": webhook_token},
                                 timeout=60)
        hook_s = time.perf_counter() - t0
        if response.status_code != 202:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:300]}")
        names = response.json().get("applications", [])
        refreshed = len(names)
        position = names.index(LATENCY_APP) + 1 if LATENCY_APP in names else None
        applied = None
        while time.perf_counter() - t0 < 120:
            obj = engine.get(configmaps, LATENCY_APP, "cfg-0")
            if obj and (obj.get("data") or {}).get("revision") == value:
                applied = time.perf_counter() - t0
                break
            time.sleep(0.02)
        drained = wait_idle() - t0
        cpu = cpu_delta(cpu0, ctx.system.cpu())
        samples.append({"applied_s": applied, "webhook_response_s": round(hook_s, 4),
                        "push_s": round(push_s, 3), "apps_refreshed": refreshed,
                        "queue_position": position,
                        "drained_s": round(drained, 3), "cpu_s": cpu})
        log(f"{label} push {i}/{pushes}: applied in "
            f"{'TIMEOUT' if applied is None else f'{applied:.3f} s'}, "
            f"queue drained after {drained:.2f} s, launcher {cpu['launcher']:.2f} CPU-s")
    ok = [s["applied_s"] for s in samples if s["applied_s"] is not None]
    return {"apps_in_repo": samples[0]["apps_refreshed"] if samples else 0,
            "queue_position": samples[0]["queue_position"] if samples else None,
            "applied_s": summary(ok), "timeouts": len(samples) - len(ok),
            "drained_s": summary([s["drained_s"] for s in samples]),
            "launcher_cpu_s_per_push": summary([s["cpu_s"]["launcher"] for s in samples]),
            "webhook_response_s": summary([s["webhook_response_s"] for s in samples]),
            "samples": samples}


# --- 2. first sync of N apps -------------------------------------------------------------------
def first_sync(ctx: Context, n: int, timeout: float) -> dict:
    names = [f"bench-{i:03d}" for i in range(n)]
    for name in names:
        ctx.repo.write(workload.app_files(name, f"apps/{name}"))
    sha = ctx.repo.commit_and_push(f"{n} applications")
    wait_idle()
    cpu0, jobs0 = ctx.system.cpu(), jobs_done()
    watch = machine.Stopwatch()
    workload.create_apps([(name, f"apps/{name}") for name in names], ctx.repo, ctx.git, ctx.kube)
    created_s = watch.elapsed
    log(f"first sync: {n} apps created in {created_s:.2f} s; waiting for Synced+Healthy")
    synced_s, samples = wait_synced(names, sha, timeout, "first sync")
    total_s = created_s + synced_s
    cpu_synced = cpu_delta(cpu0, ctx.system.cpu())
    drained = wait_idle() - watch.start
    cpu_idle = cpu_delta(cpu0, ctx.system.cpu())
    jobs = jobs_done() - jobs0
    log(f"first sync: {jobs} jobs run until idle ({jobs / n:.1f} per app)")
    ctx.bg_names = names
    return {"apps": n, "resources": n * 10, "rows_created_s": round(created_s, 2),
            "all_synced_healthy_s": round(total_s, 2), "idle_after_s": round(drained, 2),
            "jobs_until_idle": jobs,
            "cpu_s_until_synced": cpu_synced, "cpu_s_until_idle": cpu_idle,
            "progress": samples[::4]}


# --- 3. no-change refresh ----------------------------------------------------------------------
def no_change_refresh(ctx: Context, names: list[str], profile: bool) -> dict:
    from apps.applications import queueing, reconcile
    from apps.applications.models import Application
    from apps.clusters import services as clusters

    def load():
        return list(Application.objects.select_related("repository", "cluster", "project")
                    .filter(name__in=names))

    wait_idle()
    count = counter()
    out = {"apps": len(names)}
    for label in ("warm_up", "measured"):
        apps = load()
        cpu0 = machine.cpu_seconds([os.getpid()])
        with count.window():
            watch = machine.Stopwatch()
            ops = reconcile.refresh_many(apps)
            wall = watch.elapsed
        cpu = machine.cpu_seconds([os.getpid()]) - cpu0
        for op in ops:  # should be none; never leave one Pending
            queueing.enqueue_operation(op)
        out[label] = {"wall_s": round(wall, 3), "ms_per_app": round(wall * 1000 / len(apps), 2),
                      "cpu_s": round(cpu, 2), "automated_ops": len(ops), **count.snapshot()}
        log(f"refresh_many {label}: {wall:.2f} s for {len(apps)} apps "
            f"({wall * 1000 / len(apps):.1f} ms/app), HTTP {count.snapshot()['http']}, "
            f"git {count.git}, SQL {count.sql}")
    out["status_after"] = app_status(names)
    if profile:
        apps = load()
        profiler = cProfile.Profile()
        profiler.enable()
        reconcile.refresh_many(apps)
        profiler.disable()
        out["profile"] = write_profile(ctx, "refresh-many", profiler)
    runtime = next(iter(clusters._runtimes.values()), None)
    if runtime:
        out["cache_objects"] = len(runtime.cache)
        out["comparator_resource_memo"] = len(runtime.comparator._resource_memo)
        out["comparator_app_memo"] = len(runtime.comparator._app_memo)
    return out


# --- 4. one app with 1,000 ConfigMaps ----------------------------------------------------------
def big_app(ctx: Context, count: int, name: str = BIG_APP, profile: bool = False) -> dict:
    from apps.applications import operations, services
    from apps.applications.models import Application

    path = f"big/{name}"
    ctx.repo.write(workload.configmap_files(name, path, count))
    sha = ctx.repo.commit_and_push(f"{name}: {count} ConfigMaps")
    workload.create_apps([(name, path)], ctx.repo, ctx.git, ctx.kube, automated=False,
                         schedule=False)
    app = Application.objects.select_related("repository", "cluster", "project").get(name=name)
    cpu0 = ctx.system.cpu()
    profiler = cProfile.Profile() if profile else None
    watch = machine.Stopwatch()
    if profiler:
        profiler.enable()
    op = services.request_sync(app, enqueue=False)
    op = operations.run(op.pk)
    if profiler:
        profiler.disable()
    total = watch.elapsed
    cpu = cpu_delta(cpu0, ctx.system.cpu())
    op.refresh_from_db()
    app.refresh_from_db()
    live, _ = ctx.engine.list(ctx.engine.resource_for("v1", "ConfigMap"), name)
    tracked = sum(1 for o in live if o["metadata"]["name"].startswith("cm-"))
    out = {"configmaps": count, "phase": op.phase, "message": op.message[:200],
           "operation_s": round(op.duration or 0, 2), "total_with_refresh_s": round(total, 2),
           "objects_in_cluster": tracked, "sync_status": app.sync_status,
           "health_status": app.health_status, "synced_sha_ok": app.synced_sha == sha,
           "cpu_s": cpu}
    if profiler:
        out["profile"] = write_profile(ctx, f"first-sync-{name}", profiler)
    log(f"{name}: {count} ConfigMaps synced in {op.duration or 0:.1f} s (operation), "
        f"{total:.1f} s with the refresh after it; {op.phase}; {tracked} in the cluster")
    return out


# --- profile of the first sync of 10-resource apps, in-process ---------------------------------
def profile_first_sync(ctx: Context, k: int) -> dict:
    """What a worker does for a new app (refresh → automated sync → refresh), k apps in a row
    in this process under cProfile (the launcher's workers cannot be profiled from here)."""
    from apps.applications import refreshing
    from apps.applications.models import Application

    names = [f"prof-{i:02d}" for i in range(k)]
    for name in names:
        ctx.repo.write(workload.app_files(name, f"apps/{name}"))
    sha = ctx.repo.commit_and_push(f"{k} applications to profile")
    workload.create_apps([(n, f"apps/{n}") for n in names], ctx.repo, ctx.git, ctx.kube,
                         schedule=False)
    apps = list(Application.objects.select_related("repository", "cluster", "project")
                .filter(name__in=names))
    count = counter()
    profiler = cProfile.Profile()
    with count.window():
        watch = machine.Stopwatch()
        profiler.enable()
        for app in apps:
            refreshing.refresh_now(app)
        profiler.disable()
        wall = watch.elapsed
    synced = Application.objects.filter(name__in=names, synced_sha=sha, sync_status="Synced").count()
    out = {"apps": k, "wall_s": round(wall, 2), "s_per_app": round(wall / k, 3),
           "synced": synced, **count.snapshot(), "profile": write_profile(ctx, "first-sync-10", profiler)}
    log(f"profiled first sync of {k} apps in-process: {wall / k:.2f} s/app, HTTP {count.http}")
    return out


# --- profile of what one push costs the workers ------------------------------------------------
def profile_push_refresh(ctx: Context, changed_app: str) -> dict:
    """One commit changing one ConfigMap of `changed_app`, then what a worker does after the
    webhook: jobs.refresh_repository (every app of the repository, changed ones first), here in
    this process under cProfile (warm caches)."""
    from apps.applications import jobs
    from apps.applications.models import Application
    from apps.clusters import services as clusters
    from apps.repositories.models import Repository

    folder = LATENCY_PATH if changed_app == LATENCY_APP else f"apps/{changed_app}"
    value = f"profile-{time.time():.0f}"
    ctx.repo.write({f"{folder}/configmap-0.yaml": workload.configmap("cfg-0", changed_app, value)})
    ctx.repo.commit_and_push("profile: one ConfigMap")
    repo = Repository.objects.get(url=ctx.repo.url)
    apps = Application.objects.filter(repository=repo).count()

    def memo_size():
        return sum(len(r.comparator._resource_memo) for r in clusters._runtimes.values())

    memo_before = memo_size()
    count = counter()
    profiler = cProfile.Profile()
    with count.window():
        watch = machine.Stopwatch()
        profiler.enable()
        jobs.refresh_repository(repo.pk)
        profiler.disable()
        wall = watch.elapsed
    obj = ctx.engine.get(ctx.engine.resource_for("v1", "ConfigMap"), changed_app, "cfg-0")
    applied = bool(obj and obj.get("data", {}).get("revision") == value)
    out = {"apps": apps, "changed_app": changed_app, "applied": applied,
           "wall_s": round(wall, 2), "ms_per_app": round(wall * 1000 / max(apps, 1), 1),
           **count.snapshot(),
           "comparator_resource_memo": {"before": memo_before, "after": memo_size()},
           "profile": write_profile(ctx, "push-refresh", profiler)}
    log(f"one push, refresh_repository of {apps} apps in-process: {wall:.2f} s "
        f"({out['ms_per_app']} ms per app), git {count.git}, applied {applied}")
    return out


# --- 5. memory ---------------------------------------------------------------------------------
def launcher_at_rest(ctx: Context, settle: float = 5) -> dict:
    wait_idle()
    time.sleep(settle)
    return machine.tree_rss(ctx.system.launcher.pid)


def watched_objects(ctx: Context) -> int:
    engine = ctx.engine
    total = 0
    for api_version, kind in (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service")):
        items, _ = engine.list(engine.resource_for(api_version, kind))
        total += len(items)
    return total


def fill(ctx: Context, at_least: int) -> dict:
    """Untracked ConfigMaps (same shape as the apps') until the watched kinds hold `at_least`
    objects cluster-wide."""
    engine = ctx.engine
    have = watched_objects(ctx)
    missing = max(0, at_least - have)
    if missing:
        ns = "bench-filler"
        if engine.get(engine.resource_for("v1", "Namespace"), None, ns) is None:
            engine.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
        path = engine.resource_for("v1", "ConfigMap").path(ns)
        start = len(engine.list(engine.resource_for("v1", "ConfigMap"), ns)[0])

        def create(i):
            obj = workload.configmap(f"filler-{i:05d}", "filler")
            obj["metadata"]["namespace"] = ns
            engine.request("POST", path, body=obj)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(start, start + missing)))
    return {"before": have, "created": missing, "after": watched_objects(ctx)}


def memory_probe(ctx: Context, timeout: float = 900) -> dict:
    """A fresh process holding the engine's watch cache for every app (what a worker holds):
    peak and current RSS (python -m benchmarks.probe)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.probe"], cwd=PROJECT_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx.system.children.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"the memory probe did not finish in {timeout:.0f} s:\n{err[-2000:]}")
    if proc.returncode != 0:
        raise RuntimeError(f"the memory probe failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])
