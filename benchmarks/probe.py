"""Memory of a process holding the engine's watch cache: started by scenarios.memory_probe with
the bench's environment (DATABASE_URL, REDIS_URL, GITOPS_UI_DATA_DIR).

It does what a worker does for every application (refresh: render, compare against the watch
cache, server-side dry runs on a cold memo), without automated syncs, then reports its resident
memory, peak included, and how many objects its cache holds. Last line of stdout: JSON.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time

from .machine import own_memory


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitops_ui.settings")
    import django

    django.setup()
    from apps.applications import reconcile
    from apps.applications.models import Application
    from apps.clusters import services as clusters
    from apps.repositories import services as repositories

    baseline = own_memory()
    apps = list(Application.objects.select_related("repository", "cluster", "project"))
    start = time.perf_counter()
    refs_by_repo = {}
    for app in apps:
        if app.repository_id not in refs_by_repo:
            refs_by_repo[app.repository_id] = repositories.refs(app.repository)
        reconcile.refresh(app, known_refs=refs_by_repo[app.repository_id], auto_sync=False)
    refresh_s = time.perf_counter() - start
    gc.collect()
    time.sleep(2)
    runtimes = list(clusters._runtimes.values())
    result = {
        "apps": len(apps), "refresh_all_cold_s": round(refresh_s, 2),
        "cache_objects": sum(len(r.cache) for r in runtimes),
        "watched_kinds": sorted(f"{k[1]}.{k[0]}".rstrip(".") for r in runtimes
                                for k in r.cache._watches),
        "comparator_resource_memo": sum(len(r.comparator._resource_memo) for r in runtimes),
        "after_django_setup": baseline, "after": own_memory(),
    }
    for r in runtimes:
        r.cache.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:
        print(f"probe failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise
