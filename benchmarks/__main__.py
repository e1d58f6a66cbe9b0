"""python -m benchmarks [--apps N] [--pushes K] [--only NAME[,NAME…]] [--no-profile]

Measurements (--only picks some; default all):
  latency     webhook → applied for one 10-resource app: alone, then with the N apps in the repo
  first-sync  N apps × 10 resources created → all Synced and Healthy (launcher's workers)
  floor       the cluster alone: the same N × 10 objects applied by a bare client, no tool →
              every Deployment Available (benchmarks/floor.py); not in the default set
  refresh     no-change refresh_many of the N apps in this process: ms per app, LISTs, requests
  big-app     first sync of one app with --big ConfigMaps (1,000), in this process
  memory      RSS of the launcher's processes at rest; peak RSS of a process whose watch cache
              holds ≥ --min-objects objects (a separate probe process)
  profile     cProfile of refresh_many, of in-process first syncs of 10-resource apps, and of a
              second big-app sync (files in bench-results/)
  polling     commit → applied with no webhook (p50, max over 10 commits), and the CPU per hour
              of polling 50 unchanged repositories (benchmarks/polling.py)
  flood       --flood-deliveries GitLab deliveries (distinct UUIDs) in --flood-seconds for one
              commit: ls-remote calls and app refreshes they cost, and webhook → applied of
              new commits during the flood vs at rest (benchmarks/flood.py)
  pages       with --page-apps (1,000) applications in the database: list page and list API,
              sequential, then with --readers concurrent readers while /healthz is probed;
              the big app's page when big-app ran too (benchmarks/pages.py)
  pipeline    tag webhook → build started (p50/p95 over --pushes ≤ 10 build tags); a push
              build's time over a bare `buildah bud` + `buildah push`; tag push → pods running
              the new image, end to end (benchmarks/pipeline.py)
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

from . import floor, flood, machine, pages, pipeline, polling, report, scenarios, workload
from .system import System, log

ALL = ("latency", "first-sync", "refresh", "big-app", "memory", "profile", "polling", "flood",
       "pages", "pipeline")
ON_REQUEST = ("floor",)  # only with --only: it leaves 10 N objects no app owns in the cluster


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=100,
                        help="N applications × 10 resources (first sync, refresh, latency "
                             "background); default 100")
    parser.add_argument("--pushes", type=int, default=20, help="pushes per latency run (20)")
    parser.add_argument("--only", action="append", default=[],
                        help=f"comma-separated subset of {', '.join(ALL)}")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument("--big", type=int, default=1000, help="ConfigMaps of the big app (1000)")
    parser.add_argument("--min-objects", type=int, default=5000,
                        help="objects the memory probe's watch cache must hold (5000)")
    parser.add_argument("--flood-deliveries", type=int, default=1000,
                        help="webhook deliveries of the flood (1000)")
    parser.add_argument("--flood-seconds", type=float, default=60,
                        help="seconds the flood's deliveries are spread over (60)")
    parser.add_argument("--page-apps", type=int, default=1000,
                        help="applications in the database for the pages measurement (1000)")
    parser.add_argument("--readers", type=int, default=50,
                        help="concurrent readers of the pages measurement (50)")
    parser.add_argument("--readers-seconds", type=float, default=20,
                        help="seconds the concurrent readers run (20)")
    parser.add_argument("--controller-qps", type=int, default=None,
                        help="the test cluster's controller-manager client limit, requests/s "
                             "per controller (its default: 20)")
    parser.add_argument("--sync-timeout", type=float, default=1200,
                        help="seconds to wait for the first sync of N apps (1200)")
    args = parser.parse_args(argv)
    only = {name.strip() for item in args.only for name in item.split(",") if name.strip()}
    unknown = only - set(ALL) - set(ON_REQUEST)
    if unknown:
        parser.error(f"unknown measurement(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(ALL + ON_REQUEST)}")
    args.selected = only or set(ALL)
    if args.no_profile:
        args.selected.discard("profile")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    watch = machine.Stopwatch()
    data = {"machine": machine.facts(), "args": {"apps": args.apps, "pushes": args.pushes,
                                                 "big": args.big, "only": sorted(args.selected)},
            "results": {}, "errors": []}
    data["args"]["controller_qps"] = args.controller_qps or 20
    m = data["machine"]
    print(f"machine: {m['nproc']} CPUs ({m['nproc_available']} available), {m['cpu_model']}, "
          f"{m['ram_total_mib']} MiB RAM, load {m['load_at_start']}, {m['date']}, "
          f"commit {m['commit']}", flush=True)

    def on_sigterm(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    stem = report.results_stem()
    if args.controller_qps:
        os.environ["GITOPS_UI_TEST_CONTROLLER_QPS"] = str(args.controller_qps)
    system = System()
    sel = args.selected
    results = data["results"]
    needs_launcher = bool(sel & {"latency", "first-sync", "refresh", "memory", "polling", "flood",
                                 "pipeline"})
    needs_apps = (bool(sel & {"latency", "first-sync", "refresh", "memory", "flood"})
                  and args.apps > 0)
    try:
        system.start_stack()
        system.setup_django()
        repo = workload.BenchRepo(system.get("git"), "deploy", system.stack.workdir / "work")
        ctx = scenarios.Context(system, repo, args, stem)
        if needs_launcher:
            log("starting the launcher (web, 2 workers, reconciler)…")
            system.start_launcher()
            log(f"launcher up on {system.base_url}")

        if "floor" in sel:  # before any app: the cluster holds only this
            results["floor"] = floor.run(ctx, args.apps, args.sync_timeout)
        if sel & {"latency", "flood"}:
            results["latency_setup"] = scenarios.setup_latency_app(ctx)
        if "latency" in sel:
            results["latency_alone"] = scenarios.latency(ctx, "alone", args.pushes)
        if needs_apps:
            fs = scenarios.first_sync(ctx, args.apps, args.sync_timeout)
            if "first-sync" in sel:
                results["first_sync"] = fs
            log(f"first sync of {args.apps} apps: {fs['all_synced_healthy_s']:.1f} s, launcher "
                f"{fs['cpu_s_until_synced']['launcher']:.1f} CPU-s")
        if "latency" in sel and args.apps > 0:
            results["latency_with_apps"] = scenarios.latency(ctx, f"n{args.apps}", args.pushes)
        if "flood" in sel:
            results["flood"] = flood.run(ctx, args.flood_deliveries, args.flood_seconds,
                                         min(args.pushes, 10))
        if "refresh" in sel and ctx.bg_names:
            names = ctx.bg_names + ([scenarios.LATENCY_APP] if "latency" in sel else [])
            results["refresh"] = scenarios.no_change_refresh(ctx, names, "profile" in sel)
        if "polling" in sel:
            results["polling"] = polling.latency(ctx)
        if "memory" in sel and system.launcher_running():
            results.setdefault("memory", {})["launcher_at_rest"] = scenarios.launcher_at_rest(ctx)
            log(f"launcher at rest: {results['memory']['launcher_at_rest']['total_mib']:.0f} MiB")
        if "pipeline" in sel:  # after the memory at rest: it leaves the build worker running
            results["pipeline"] = pipeline.run(ctx, min(args.pushes, 10))
        if system.launcher_running():
            data["launcher_cpu_total_s"] = round(machine.cpu_seconds([system.launcher.pid]), 1)
            log("stopping the launcher (in-process measurements follow)")
            system.stop_launcher()

        if "profile" in sel and (ctx.bg_names or "latency" in sel):
            changed = scenarios.LATENCY_APP if "latency" in sel else ctx.bg_names[0]
            results["profile_push_refresh"] = scenarios.profile_push_refresh(ctx, changed)
        if "big-app" in sel:
            results["big_app"] = scenarios.big_app(ctx, args.big)
        if "profile" in sel:
            results["profile_first_sync"] = scenarios.profile_first_sync(ctx, 5)
            if "big-app" in sel:
                results["profile_big_app"] = scenarios.big_app(ctx, args.big, name="bigprof",
                                                               profile=True)
        if "pages" in sel:  # after big-app, whose app page it times; the launcher serves it;
            # before the memory filler, whose objects a new launcher would load
            if not system.launcher_running():
                log("starting the launcher for the pages…")
                system.start_launcher()
            results["pages"] = pages.run(ctx, args.page_apps, readers=args.readers,
                                         seconds=args.readers_seconds,
                                         big_app=scenarios.BIG_APP if "big-app" in sel else None)
            system.stop_launcher()
        if "memory" in sel:
            mem = results.setdefault("memory", {})
            mem["filler"] = scenarios.fill(ctx, args.min_objects + 200)
            log(f"watched kinds hold {mem['filler']['after']} objects; starting the memory probe")
            mem["probe"] = scenarios.memory_probe(ctx)
            log(f"probe: {mem['probe']['cache_objects']} objects, "
                f"VmHWM {mem['probe']['after']['vmhwm_mib']:.0f} MiB")
        if "polling" in sel:  # the launcher is stopped: only the measuring process polls
            results["polling_cost"] = polling.cost(ctx)
        from apps.clusters import services as clusters

        runtime = next(iter(clusters._runtimes.values()), None)
        results.setdefault("memory", {})["bench_process"] = {
            **machine.own_memory(), "cache_objects": len(runtime.cache) if runtime else 0}
        status = 0
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        data["errors"].append("interrupted")
        status = 130
    except Exception as exc:
        traceback.print_exc()
        data["errors"].append(f"{type(exc).__name__}: {exc}")
        if system.launcher_log:
            log(f"launcher log tail:\n{system.launcher_tail()}")
        status = 1
    finally:
        system.close_uninterrupted()
    data["wall_s"] = round(watch.elapsed, 1)
    data["machine"]["load_at_end"] = machine.loadavg()
    path = report.write_json(stem, data)
    print()
    print(report.table(data))
    print(f"\nwall time {data['wall_s']:.0f} s; load at start {m['load_at_start']}, at end "
          f"{m['load_at_end']}; results in {path}")
    if data["errors"]:
        print("errors: " + "; ".join(data["errors"]), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
