"""The cluster's own floor for a first sync: the workload's N × 10 objects applied by a bare
client (16 threads, one server-side apply per object, no dry run, no Git, no database), timed
until every Deployment is Available.

Whatever a GitOps tool does, the controller-manager must then create each Deployment's
ReplicaSet and Pod and write their status, and the scheduler and KWOK must place and start the
Pod. With the controller-manager's default client limits (20 requests/s, bursts of 30, per
controller) that is the slowest part of a large first sync: this measures it without any tool,
so a tool's figure can be read against it.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from . import machine, workload
from .system import log

THREADS = 16  # as many as the engine's job threads
MANAGER = "bench-floor"


def _manifests(i: int) -> list[dict]:
    namespace = f"floor-{i:04d}"
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for obj in workload.app_files(namespace, namespace).values():
        objects.append({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})
    return objects


def _available(deployment: dict) -> bool:
    status = deployment.get("status") or {}
    return (deployment["metadata"]["namespace"].startswith("floor-")
            and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
            and status.get("availableReplicas", 0) >= 1)


def run(ctx, n: int, timeout: float = 1800) -> dict:
    cluster = ctx.engine
    deployments = cluster.resource_for("apps/v1", "Deployment")
    cpu0 = ctx.system.cpu()
    watch = machine.Stopwatch()

    def apply_app(i: int) -> None:
        for obj in _manifests(i):
            cluster.apply(obj, MANAGER)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(apply_app, range(n)))
    applied_s = watch.elapsed
    log(f"floor: {n * 11} objects applied in {applied_s:.1f} s; waiting for the Deployments")
    samples, last_log = [], 0.0
    while True:
        items, _ = cluster.list(deployments)
        ready = sum(_available(d) for d in items)
        samples.append((round(watch.elapsed, 1), ready))
        if ready >= n:
            break
        if watch.elapsed > timeout:
            raise TimeoutError(f"floor: {ready}/{n} Deployments Available after {timeout:.0f} s")
        if watch.elapsed - last_log > 10:
            last_log = watch.elapsed
            log(f"floor: {ready}/{n} Deployments Available after {watch.elapsed:.0f} s")
        time.sleep(1)
    cpu = {k: round(v - cpu0.get(k, 0), 2) for k, v in ctx.system.cpu().items()}
    return {"apps": n, "objects": n * 11, "threads": THREADS, "applied_s": round(applied_s, 2),
            "all_available_s": round(watch.elapsed, 2), "cpu_s": cpu, "progress": samples[::5]}
