"""The "polling" measurement: a commit goes live without a webhook, and what polling costs.

latency(ctx)  commit pushed → the change in the cluster, with no webhook (the launcher's
              reconciler polls every GITOPS_UI_POLL_INTERVAL; the periodic refresh stays at
              180 s), over 10 commits pushed at random moments of the poll cycle.
cost(ctx)     CPU of polling 50 unchanged repositories on the stack's git server, per hour: a
              separate process (`python -m benchmarks.polling`, started with the bench's
              environment) runs the poll job (jobs.poll_repositories, what a worker runs) every
              interval for --seconds and reports its own CPU, the git processes it started
              included; the git server's CPU over the same window is measured from here.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

from . import machine, workload
from .system import PROJECT_DIR, log

POLLED_APP = "polled"
COST_REPOS = 50


def latency(ctx, commits: int = 10) -> dict:
    from django.conf import settings

    from apps.applications import polling
    from apps.repositories.models import Repository

    from .scenarios import summary, wait_idle, wait_synced

    interval = settings.GITOPS_UI_POLL_INTERVAL
    repo = workload.BenchRepo(ctx.git, POLLED_APP, ctx.system.stack.workdir / "work")
    folder = f"apps/{POLLED_APP}"
    repo.write(workload.app_files(POLLED_APP, folder))
    sha = repo.commit_and_push("polled app")
    workload.create_apps([(POLLED_APP, folder)], repo, ctx.git, ctx.kube)
    wait_synced([POLLED_APP], sha, 300, "polled app first sync")
    repo_id = Repository.objects.get(url=repo.url).pk
    deadline = time.monotonic() + 60
    while not polling.state(repo_id)["known"] and time.monotonic() < deadline:
        time.sleep(0.2)
    engine = ctx.engine
    configmaps = engine.resource_for("v1", "ConfigMap")
    samples = []
    for i in range(1, commits + 1):
        wait_idle()
        time.sleep(random.uniform(0, interval))  # any moment of the poll cycle
        value = f"polled-{i}-{time.time():.0f}"
        repo.write({f"{folder}/configmap-0.yaml": workload.configmap("cfg-0", POLLED_APP, value)})
        repo.commit_and_push(f"polled push {i}")  # and no webhook
        t0 = time.perf_counter()
        applied = None
        while time.perf_counter() - t0 < 120:
            obj = engine.get(configmaps, POLLED_APP, "cfg-0")
            if obj and (obj.get("data") or {}).get("revision") == value:
                applied = time.perf_counter() - t0
                break
            time.sleep(0.05)
        samples.append(applied)
        log(f"polling push {i}/{commits}: applied in "
            f"{'TIMEOUT' if applied is None else f'{applied:.2f} s'}")
    ok = [s for s in samples if s is not None]
    return {"poll_interval_s": interval, "commits": commits, "applied_s": summary(ok),
            "timeouts": len(samples) - len(ok), "samples": samples}


def cost(ctx, repos: int = COST_REPOS, seconds: float = 60) -> dict:
    """Run with the launcher stopped: only the measuring process polls."""
    from apps.applications.models import Application, Project
    from apps.clusters.models import Cluster
    from apps.repositories.models import Repository

    git = ctx.git
    project, _ = Project.objects.get_or_create(name="default")
    cluster = Cluster.objects.filter(name="bench").first() or Cluster.objects.create(
        name="bench", auth=Cluster.Auth.KUBECONFIG, kubeconfig=ctx.kube.kubeconfig_text())
    made = []
    for i in range(repos):
        name = f"poll-cost-{i:02d}"
        bench_repo = workload.BenchRepo(git, name, ctx.system.stack.workdir / "work")
        bench_repo.write({"cm.yaml": workload.configmap("cm", name)})
        bench_repo.commit_and_push("one commit")
        repository = Repository.objects.create(url=bench_repo.url, username=git.username,
                                               password=git.password)
        # An app per repository: only repositories that applications use are polled.
        made.append(Application.objects.create(
            name=name, project=project, repository=repository, cluster=cluster, namespace=name,
            path=".", automated=False))
    server = [p.proc.pid for p in git.processes if p.running]
    try:
        server0 = machine.cpu_seconds(server)
        proc = subprocess.run([sys.executable, "-m", "benchmarks.polling", "--seconds",
                               str(seconds)], cwd=PROJECT_DIR, capture_output=True, text=True,
                              timeout=seconds + 120)
        server_cpu = machine.cpu_seconds(server) - server0
        if proc.returncode != 0:
            raise RuntimeError(f"the polling cost probe failed:\n{proc.stderr[-3000:]}")
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        for app in made:
            repository = app.repository
            app.delete()
            repository.delete()
    # Other scenarios' repositories are polled too: the figures are scaled to `repos`.
    per_hour = 3600 / probe["window_s"] * repos / probe["repositories_per_poll"]
    out = {"repositories": repos, **probe, "git_server_cpu_s": round(server_cpu, 2),
           "cpu_s_per_hour": round(probe["cpu_s"] * per_hour, 1),
           "git_server_cpu_s_per_hour": round(server_cpu * per_hour, 1)}
    log(f"polling {repos} unchanged repositories: {out['cpu_s_per_hour']} CPU-s per hour "
        f"(git server {out['git_server_cpu_s_per_hour']}), {probe['polls']} polls, "
        f"{probe['ls_remote']} ls-remote")
    return out


def main(argv: list[str]) -> None:
    """The cost probe: the poll job every GITOPS_UI_POLL_INTERVAL for --seconds; last line of
    stdout is JSON with this process's CPU over the window (children included)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitops_ui.settings")
    import django

    django.setup()
    from django.conf import settings

    from apps.applications import jobs, polling
    from apps.engine.source import git as git_module

    calls = {"ls-remote": 0}
    real_run = git_module._run

    def counting_run(argv, what, *a, **kw):  # counts, then runs git as usual
        calls[what] = calls.get(what, 0) + 1
        return real_run(argv, what, *a, **kw)

    git_module._run = counting_run
    interval = settings.GITOPS_UI_POLL_INTERVAL
    jobs.poll_repositories()  # the baseline refs, and warm imports: not counted
    polling._pool()
    time.sleep(interval)
    calls.clear()
    cpu0, start, polls = machine.cpu_seconds([os.getpid()]), time.monotonic(), 0
    polled = 0
    while time.monotonic() - start < args.seconds:
        began = time.monotonic()
        polled = max(polled, jobs.poll_repositories())
        polls += 1
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    window = time.monotonic() - start
    cpu = machine.cpu_seconds([os.getpid()]) - cpu0
    print(json.dumps({"window_s": round(window, 1), "poll_interval_s": interval, "polls": polls,
                      "repositories_per_poll": polled,
                      "ls_remote": calls.get("ls-remote", 0), "cpu_s": round(cpu, 2),
                      "cpu_ms_per_ls_remote": round(cpu * 1000 / max(calls.get("ls-remote", 0), 1), 1)}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
