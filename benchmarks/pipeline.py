"""The "pipeline" measurement: the build loop (benchmarks/loop.py) timed on the platform's launcher.

  started   tag webhook POST → the build's started_at, over --pushes (≤ 10) build-* tags of
            one commit (the first starts the on-demand build worker; the others reuse its image),
            with where the time goes (webhook answer, dequeued, the forked horse running the job)
  overhead  a push build's finished_at - started_at minus a bare `buildah bud` + `buildah push`
            of the same tree with the same flags (vfs, chroot, an auth file), timed here
  e2e       tag pushed → pods of the Deployment Running the new image, with the milestones
            between (build started, finished, write-back commit, application synced)
"""
from __future__ import annotations

import time

from .loop import Loop, utc_seconds
from .system import log

E2E_RUNS = 5


def run(ctx, pushes: int = 10, e2e_runs: int = E2E_RUNS) -> dict:
    loop = Loop(ctx.system, "pipeline", replicas=1)
    log("pipeline: seeding the service and deploy repositories, registry, rules, application…")
    loop.seed()
    out = {"started": started_latency(loop, pushes)}
    out.update(push_runs(loop, e2e_runs))
    s, o, e = out["started"]["webhook_to_started_s"], out["overhead_s"], out["e2e_s"]
    log(f"pipeline: webhook → build started p50 {s['p50']:.3f} s, p95 {s['p95']:.3f} s; overhead "
        f"over bare buildah p50 {o['p50']:.2f} s; tag push → pods running p50 {e['p50']:.1f} s")
    out["targets"] = {"started_p50_s": 0.5, "overhead_p50_s": 1.0}
    return out


def started_latency(loop: Loop, pushes: int) -> dict:
    """build-0.0.N tags of one commit, one at a time: POST → started_at, and where it went."""
    import django_rq
    from rq.job import Job

    from .scenarios import summary

    connection = django_rq.get_connection("builds")
    samples = []
    for i in range(1, pushes + 1):
        tag = f"build-0.0.{i}"
        after = loop.push_tag(tag, loop.service_sha)
        posted, answered, pks = loop.post_tag_hook(tag, loop.service_sha, after)
        build = loop.wait_build(pks[0], started=True)
        started = build.started_at.timestamp() - posted
        # The worker's parent dequeues (an rq execution is created), forks a horse that sets
        # Django up, then runs the job (rq's started_at), which claims a slot (our started_at).
        job = Job.fetch(f"build-{build.pk}", connection=connection)
        executions = job.get_executions()
        dequeued = min(utc_seconds(e.created_at) for e in executions) - posted \
            if executions else None
        horse = utc_seconds(job.started_at) - posted if job.started_at else None
        finished = loop.wait_build(build.pk)
        if finished.status != "succeeded":
            raise RuntimeError(f"build #{build.pk} {finished.status}: {finished.message}")
        samples.append({"tag": tag, "started_s": round(started, 4), "answer_s": round(answered, 4),
                        "job_dequeued_s": None if dequeued is None else round(dequeued, 4),
                        "horse_running_s": None if horse is None else round(horse, 4),
                        "reused": finished.reused_from_id is not None,
                        "duration_s": round(finished.duration or 0, 2)})
        log(f"pipeline: {tag}: started {started:.3f} s after the POST (answered in "
            f"{answered:.3f} s, dequeued at {dequeued or 0:.3f} s, the forked horse ran the "
            f"job at {horse or 0:.3f} s), "
            f"{'reused' if finished.reused_from_id else 'built'} in {finished.duration:.1f} s")
    values = [s["started_s"] for s in samples]
    return {"webhook_to_started_s": summary(values),
            "warm_webhook_to_started_s": summary(values[1:]),
            "webhook_answer_s": summary([s["answer_s"] for s in samples]),
            **{key: summary([s[key] for s in samples if s[key] is not None])
               for key in ("job_dequeued_s", "horse_running_s")},
            "samples": samples}


def push_runs(loop: Loop, runs: int) -> dict:
    """A new commit each run: a bare buildah build+push of its tree, then push-1.0.N → pods."""
    from .scenarios import summary

    bare_root = loop.system.stack.workdir / "bare-buildah"
    # Untimed: the base image into the bare storage, as the worker's holds it since the first build.
    loop.bare_build_and_push(bare_root, loop.export(loop.service_sha, bare_root / "ctx-0"),
                             f"{loop.registry.host}/bare/{loop.name}:warm-up")
    samples = []
    for i in range(1, runs + 1):
        version = f"1.0.{i}"
        sha = loop.commit_service(f"hello from {version}\n", f"version {version}")
        context = loop.export(sha, bare_root / f"ctx-{i}")
        bare = loop.bare_build_and_push(bare_root, context,
                                        f"{loop.registry.host}/bare/{loop.name}:{version}")
        tag = f"push-{version}"
        t0 = time.time()
        after = loop.push_tag(tag, sha)
        posted, _, pks = loop.post_tag_hook(tag, sha, after)
        marks = follow(loop, pks[0], version, t0)
        build = loop.build(pks[0])
        pipeline_s = build.duration
        samples.append({"version": version, "bare_s": round(bare, 2),
                        "build_s": round(pipeline_s, 2), "overhead_s": round(pipeline_s - bare, 2),
                        "tag_pushed_to_post_s": round(posted - t0, 3), **marks})
        log(f"pipeline: {tag}: build+push {pipeline_s:.2f} s vs bare {bare:.2f} s; pods running "
            f"{marks['pods_running_s']:.1f} s after the tag push ({marks})")
    return {"bare_s": summary([s["bare_s"] for s in samples]),
            "build_s": summary([s["build_s"] for s in samples]),
            "overhead_s": summary([s["overhead_s"] for s in samples]),
            "e2e_s": summary([s["pods_running_s"] for s in samples]),
            "e2e_samples": samples}


def follow(loop: Loop, pk: int, version: str, t0: float, timeout: float = 600) -> dict:
    """Seconds from `t0` to each milestone of a push build's way to the pods (build times from
    the database; the others as first seen, polled every 0.1 s)."""
    image = f"{loop.image}:{version}"
    marks: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while "pods_running_s" not in marks:
        if time.monotonic() > deadline:
            raise TimeoutError(f"push {version}: only {sorted(marks)} after {timeout:.0f} s")
        now = time.time() - t0
        build = loop.build(pk)
        if build.status in ("failed", "canceled"):
            raise RuntimeError(f"build #{pk} {build.status}: {build.message}")
        if build.started_at and "build_started_s" not in marks:
            marks["build_started_s"] = round(build.started_at.timestamp() - t0, 3)
        if build.finished_at and "build_finished_s" not in marks:
            marks["build_finished_s"] = round(build.finished_at.timestamp() - t0, 3)
        commit = loop.write_back_commit(version) if "build_finished_s" in marks else None
        if commit and "write_back_commit_s" not in marks:
            marks["write_back_commit_s"] = round(now, 3)
        if commit and "app_synced_s" not in marks and loop.synced(commit):
            marks["app_synced_s"] = round(now, 3)
        if "write_back_commit_s" in marks and len(loop.running_pods(image)) >= loop.replicas:
            marks["pods_running_s"] = round(now, 3)
        time.sleep(0.1)
    return marks


def rows(result: dict | None) -> list[tuple[str, str, str]]:
    """The lines of the report's table (benchmarks/report.py)."""
    if not result:
        return []

    def fmt(s, digits=3):
        return f"p50 {s['p50']:.{digits}f} s, p95 {s['p95']:.{digits}f} s (n={s['n']})"

    st = result["started"]
    return [
        ("tag webhook → build started (launcher's build worker)", fmt(st["webhook_to_started_s"])
         + f"; first (worker started on demand) {st['samples'][0]['started_s']:.3f} s",
         "p50 ≤ 0.5 s"),
        ("  … webhook answered; job dequeued; forked horse (Django set up) runs it",
         f"p50 {st['webhook_answer_s']['p50']:.3f} s; {st['job_dequeued_s']['p50']:.3f} s; "
         f"{st['horse_running_s']['p50']:.3f} s", "(for reference)"),
        ("push build over bare `buildah bud` + `buildah push`",
         f"p50 {result['overhead_s']['p50']:.2f} s (build {result['build_s']['p50']:.2f} s vs "
         f"bare {result['bare_s']['p50']:.2f} s, n={result['overhead_s']['n']})", "≤ 1 s"),
        ("tag push → pods running the new image (end to end)", fmt(result["e2e_s"], 1),
         "(stated in the README)"),
    ]
