"""The "flood" measurement: 1,000 GitLab push deliveries in a minute for one real commit (GitLab
redelivering, or many projects' hooks on one repository), each with its own X-Gitlab-Event-UUID.

run(ctx) needs the launcher and the latency app (scenarios.setup_latency_app), plus whatever
background apps the run created (they share the repository, so a full refresh touches them all):
1. at rest: `pushes` commits of the latency app, each with its webhook, commit → applied;
2. the flood, its deliveries evenly spread and all carrying the commit at its start:
   - first half, nothing else happens: what deliveries of a handled commit cost, counted as
     ls-remote calls for the repository in the git server's access log (polling's own calls
     every GITOPS_UI_POLL_INTERVAL included, and stated) and app refreshes (changes of each
     app's reconciled_at, sampled every SAMPLE s);
   - second half: `pushes` new commits during the flood, commit → applied for each. From the
     first of them on, the flood's commit is no longer the branch's: each delivery then queues
     a job that costs one ls-remote and refreshes nothing. "full_refreshes_beyond_pushes" is
     app refreshes / apps - pushes over the whole flood (each push refreshes every app once,
     and the latency app once more after its sync: about 1/apps per push).
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from . import machine, workload
from .system import log

SAMPLE = 0.2  # seconds between two reads of the apps' reconciled_at


class RefreshSampler:
    """Counts refreshes of the repository's apps: each change of an app's reconciled_at."""

    def __init__(self, repo_url: str):
        self.repo_url, self.count, self.stop = repo_url, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict:
        from apps.applications.models import Application

        return dict(Application.objects.filter(repository__url=self.repo_url)
                    .values_list("pk", "reconciled_at"))

    def _run(self):
        from django.db import connection

        try:
            last = self._read()
            while not self.stop.wait(SAMPLE):
                now = self._read()
                self.count += sum(1 for pk, at in now.items() if last.get(pk) != at)
                last = now
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def ls_remote_calls(ctx) -> int:
    """Ref listings of the bench repository answered by the git server (one per ls-remote; a
    fetch lists refs too, and is counted)."""
    name = ctx.repo.url.rstrip("/").rsplit("/", 1)[-1]
    text = ctx.git.processes[0].log.read_text(errors="replace")
    return sum(1 for line in text.splitlines()
               if f"/{name}/info/refs?service=git-upload-pack" in line)


def run(ctx, deliveries: int = 1000, seconds: float = 60, pushes: int = 10) -> dict:
    from django.conf import settings

    from apps.applications.models import Application

    from .scenarios import LATENCY_APP, LATENCY_PATH, summary, wait_idle

    engine = ctx.engine
    configmaps = engine.resource_for("v1", "ConfigMap")
    url = f"{ctx.system.base_url}/api/webhook/git"
    headers = {"X-Gitlab-Event": "Push Hook",
               "X-Gitlab-Token": os.environ["GITOPS_UI_WEBHOOK_SECRET"]}

    def payload(sha: str) -> dict:
        return {"object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40,
                "after": sha, "project": {"git_http_url": ctx.repo.url, "default_branch": "main"}}

    def push_and_time(label: str, i: int) -> float | None:
        value = f"{label}-{i}-{time.time():.0f}"
        ctx.repo.write({f"{LATENCY_PATH}/configmap-0.yaml":
                        workload.configmap("cfg-0", LATENCY_APP, value)})
        sha = ctx.repo.commit_and_push(f"{label} push {i}")
        t0 = time.perf_counter()
        response = requests.post(url, json=payload(sha), timeout=60,
                                 headers={**headers, "X-Gitlab-Event-UUID": f"{label}-{i}-{t0}"})
        if response.status_code != 202:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:300]}")
        while time.perf_counter() - t0 < 120:
            obj = engine.get(configmaps, LATENCY_APP, "cfg-0")
            if obj and (obj.get("data") or {}).get("revision") == value:
                return time.perf_counter() - t0
            time.sleep(0.02)
        return None

    apps = Application.objects.filter(repository__url=ctx.repo.url).count()
    at_rest = []
    for i in range(1, pushes + 1):
        wait_idle()
        at_rest.append(push_and_time("rest", i))
        log(f"flood: at rest, push {i}/{pushes} applied in {at_rest[-1]}")

    wait_idle()
    head = ctx.repo._git("rev-parse", "HEAD")
    answers: Counter = Counter()
    lock, local = threading.Lock(), threading.local()

    def send(i: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()  # one per sending thread: keep-alive
        try:
            r = local.session.post(url, json=payload(head), timeout=60,
                             headers={**headers, "X-Gitlab-Event-UUID": f"flood-{head}-{i}"})
            what = "already_handled" if r.ok and r.json().get("already_handled") else r.status_code
        except requests.RequestException as exc:
            what = type(exc).__name__
        with lock:
            answers[str(what)] += 1

    def flood() -> None:
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            for i in range(deliveries):
                time.sleep(max(0.0, start + i * seconds / deliveries - time.monotonic()))
                pool.submit(send, i)

    lists0 = ls_remote_calls(ctx)
    sender = threading.Thread(target=flood, daemon=True)
    with RefreshSampler(ctx.repo.url) as sampler:
        watch = machine.Stopwatch()
        sender.start()
        time.sleep(seconds / 2)
        handled = {"seconds": round(watch.elapsed, 1), "ls_remote": ls_remote_calls(ctx) - lists0,
                   "app_refreshes": sampler.count,
                   "polling_ls_remote_expected": int(watch.elapsed /
                                                     max(settings.GITOPS_UI_POLL_INTERVAL, 0.1))
                   if settings.GITOPS_UI_POLL_INTERVAL > 0 else 0}
        log(f"flood: first half, handled commit only: {handled}")
        during = []
        gap = seconds / 2 / max(pushes, 1)
        for i in range(1, pushes + 1):
            began = time.monotonic()
            during.append(push_and_time("flood", i))
            log(f"flood: during the flood, push {i}/{pushes} applied in {during[-1]}")
            time.sleep(max(0.0, gap - (time.monotonic() - began)))
        sender.join()
        flood_s = watch.elapsed
        whole = {"seconds": round(flood_s, 1), "ls_remote": ls_remote_calls(ctx) - lists0,
                 "app_refreshes": sampler.count}
    ok_rest = [s for s in at_rest if s is not None]
    ok_flood = [s for s in during if s is not None]
    out = {"deliveries": deliveries, "seconds": seconds, "apps_in_repo": apps,
           "answers": dict(answers), "handled_commit_phase": handled, "whole_flood": whole,
           "full_refreshes_beyond_pushes": round(whole["app_refreshes"] / max(apps, 1) - pushes, 1),
           "applied_at_rest_s": summary(ok_rest), "applied_during_flood_s": summary(ok_flood),
           "timeouts": (len(at_rest) - len(ok_rest)) + (len(during) - len(ok_flood))}
    log(f"flood of {deliveries} deliveries in {flood_s:.0f} s: {dict(answers)}; handled-commit "
        f"half: {handled['ls_remote']} ls-remote, {handled['app_refreshes']} app refreshes; "
        f"applied p50 {out['applied_during_flood_s']['p50']} s during vs "
        f"{out['applied_at_rest_s']['p50']} s at rest")
    return out
