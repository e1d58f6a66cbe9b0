"""The table printed at the end of a run, and the JSON file in bench-results/."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from .system import PROJECT_DIR

RESULTS_DIR = PROJECT_DIR / "bench-results"


def results_stem() -> Path:
    """bench-results/<date>, or <date>-2, -3… when a run of the same day is already there."""
    RESULTS_DIR.mkdir(exist_ok=True)
    day = date.today().isoformat()
    stem, n = RESULTS_DIR / day, 1
    while stem.with_suffix(".json").exists():
        n += 1
        stem = RESULTS_DIR / f"{day}-{n}"
    return stem


def write_json(stem: Path, data: dict) -> Path:
    path = stem.with_suffix(".json")
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def _s(value, unit="s", digits=2):
    if value is None:
        return "–"
    return f"{value:.{digits}f} {unit}".strip()


def rows(data: dict) -> list[tuple[str, str, str]]:
    r = data.get("results", {})
    out = []
    for key in ("latency_alone", "latency_with_apps"):
        lat = r.get(key)
        if not lat:
            continue
        a = lat["applied_s"]
        out.append((f"webhook → applied, {lat['apps_in_repo']} app(s) in the repo",
                    f"p50 {_s(a['p50'], digits=3)}, p95 {_s(a['p95'], digits=3)}, "
                    f"max {_s(a['max'], digits=3)} (n={a['n']}, timeouts {lat['timeouts']})",
                    "p50 ≤ 0.5 s, p95 ≤ 1 s (N=300)"))
        out.append(("  … webhook answer; changed app's place in the queue",
                    f"p50 {_s(lat['webhook_response_s']['p50'], digits=3)}; "
                    f"{lat.get('queue_position')} of {lat['apps_in_repo']}", ""))
        out.append((f"  … all refreshes done after push ({lat['apps_in_repo']} apps)",
                    f"p50 {_s(lat['drained_s']['p50'])}; launcher "
                    f"{_s(lat['launcher_cpu_s_per_push']['p50'], 'CPU-s')} per push (p50)",
                    "work for the changed app only"))
    fs = r.get("first_sync")
    if fs:
        out.append((f"first sync, {fs['apps']} apps × 10",
                    f"{_s(fs['all_synced_healthy_s'], digits=1)} wall; launcher "
                    f"{_s(fs['cpu_s_until_synced']['launcher'], 'CPU-s', 1)} (until idle "
                    f"{_s(fs['cpu_s_until_idle']['launcher'], 'CPU-s', 1)}); API server "
                    f"{_s(fs['cpu_s_until_synced'].get('kube-apiserver'), 'CPU-s', 1)}",
                    "≤ 33 s wall, ≤ 30 CPU-s (N=100)"))
    fl = r.get("floor")
    if fl:
        out.append((f"the cluster alone: {fl['apps']} apps' objects applied by a bare client",
                    f"applied in {_s(fl['applied_s'], digits=1)}; every Deployment Available "
                    f"after {_s(fl['all_available_s'], digits=1)}; API server "
                    f"{_s(fl['cpu_s'].get('kube-apiserver'), 'CPU-s', 1)}",
                    "(the floor of a first sync)"))
    rf = r.get("refresh")
    if rf:
        m, w = rf["measured"], rf["warm_up"]
        out.append((f"no-change refresh, {rf['apps']} apps (refresh_many)",
                    f"{_s(m['ms_per_app'], 'ms')} per app ({_s(m['wall_s'], digits=2)} wall), "
                    f"{m['lists']} LIST, {m['http_total']} HTTP, {m['sql_queries']} SQL, "
                    f"git {sum(m['git'].values())}",
                    "≤ 10 ms per app, 0 LIST"))
        out.append(("  … first pass (cold memo, lists + dry runs)",
                    f"{_s(w['ms_per_app'], 'ms')} per app, {w['lists']} LIST, {w['http_total']} HTTP",
                    "(for reference)"))
    big = r.get("big_app")
    if big:
        out.append((f"first sync, one app × {big['configmaps']} ConfigMaps",
                    f"{_s(big['operation_s'], digits=1)} operation, "
                    f"{_s(big['total_with_refresh_s'], digits=1)} incl. refresh after "
                    f"({big['phase']}, {big['objects_in_cluster']} in cluster)", "≤ 60 s"))
    pg = r.get("pages")
    if pg:
        t, how = pg["targets"], "client wall time, loopback, uvicorn"

        def p50_p95(ms):
            return f"p50 {_s(ms['p50'], 'ms', 0)}, p95 {_s(ms['p95'], 'ms', 0)} (n={ms['n']})"

        for key, label in (("list_page", "list page /applications/, signed in"),
                           ("list_api", "list API /api/applications/, token")):
            st = pg[key].get("server_timing_ms")
            out.append((f"{label}, {pg['apps_in_database']} apps ({how})",
                        p50_p95(pg[key]["wall_ms"])
                        + (f"; Server-Timing p50 {_s(st['p50'], 'ms', 0)}" if st else ""),
                        f"p50 ≤ {t['p50_ms']} ms, p95 ≤ {t['p95_ms']} ms"))
        c = pg["concurrent"]
        out.append((f"  … with {c['readers']} concurrent readers ({c['seconds']:g} s): page; API",
                    f"{p50_p95(c['page_ms'])}; {p50_p95(c['api_ms'])}; {c['requests_per_s']} "
                    f"req/s, {c['errors']} errors; CPU-s: launcher {c['cpu_s']['launcher']}, PostgreSQL "
                    f"{c['cpu_s'].get('postgres')}, readers {c['cpu_s']['readers']}",
                    f"p95 ≤ {t['concurrent_p95_ms']} ms"))
        out.append(("  … /healthz meanwhile (every 0.2 s)", p50_p95(c["healthz_ms"]),
                    f"≤ {t['healthz_ms']} ms"))
        bp = pg["big_app_page"]
        out.append((f"app page, one app × {bp.get('resources', 1000)} resources ({how})",
                    p50_p95(bp["wall_ms"]) if "wall_ms" in bp else f"skipped: {bp['skipped']}",
                    f"≤ {t['p95_ms']} ms"))
        live = pg.get("live_delay")
        if live:
            out.append(("status published → message in the browser (headless Chromium, app page)",
                        p50_p95(live["message_ms"]) if "message_ms" in live
                        else f"skipped: {live['skipped']}", "p50 ≤ 200 ms"))
            if "page_updated_ms" in live:
                out.append(("  … → the page shows it (htmx's 200 ms debounce, fragment fetched)",
                            p50_p95(live["page_updated_ms"]), "(for reference)"))
    pr = r.get("profile_push_refresh")
    if pr:
        out.append((f"one push: refresh_repository of {pr['apps']} apps in-process (profiled)",
                    f"{_s(pr['wall_s'], digits=2)} ({pr['ms_per_app']} ms per app, changed one "
                    f"applied: {pr['applied']}); git {sum(pr['git'].values())} "
                    f"({', '.join(f'{k} {v}' for k, v in pr['git'].items())})",
                    "only the changed app"))
    prof = r.get("profile_first_sync")
    if prof:
        out.append((f"first sync in-process, 10 resources (profiled, {prof['apps']} apps)",
                    f"{_s(prof['s_per_app'], digits=2)} per app, {prof['http_total']} HTTP "
                    f"({prof['http_total'] // max(prof['apps'], 1)} per app)", "(for reference)"))
    pl = r.get("polling")
    if pl:
        a = pl["applied_s"]
        out.append((f"commit → applied without a webhook (polling every {pl['poll_interval_s']:g} s)",
                    f"p50 {_s(a['p50'])}, max {_s(a['max'])} (n={a['n']}, timeouts "
                    f"{pl['timeouts']})", "≤ 15 s worst case"))
    pc = r.get("polling_cost")
    if pc:
        out.append((f"polling {pc['repositories']} unchanged repositories, per hour",
                    f"{_s(pc['cpu_s_per_hour'], 'CPU-s', 0)} ours (git ls-remote included), "
                    f"{_s(pc['git_server_cpu_s_per_hour'], 'CPU-s', 0)} the git server's",
                    "(stated in the README)"))
    fl = r.get("flood")
    if fl:
        h = fl["handled_commit_phase"]
        rest, during = fl["applied_at_rest_s"], fl["applied_during_flood_s"]
        out.append((f"flood: {fl['deliveries']} deliveries of one commit in {fl['seconds']:g} s, "
                    f"{fl['apps_in_repo']} apps",
                    f"first {h['seconds']:g} s: {h['ls_remote']} ls-remote (polling's "
                    f"~{h['polling_ls_remote_expected']} included), {h['app_refreshes']} app "
                    f"refreshes; full refreshes beyond the pushes: "
                    f"{fl['full_refreshes_beyond_pushes']}", "≤ 1 ls-remote per delivery, 0 refresh"))
        out.append(("  … webhook → applied during the flood vs at rest",
                    f"p50 {_s(during['p50'], digits=3)} vs {_s(rest['p50'], digits=3)} (max "
                    f"{_s(during['max'], digits=3)} vs {_s(rest['max'], digits=3)}, timeouts "
                    f"{fl['timeouts']})", "no slower during the flood"))
    from .pipeline import rows as pipeline_rows

    out += pipeline_rows(r.get("pipeline"))
    mem = r.get("memory", {})
    if mem.get("probe"):
        p = mem["probe"]
        out.append((f"peak RSS, process with watch cache of {p['cache_objects']} objects",
                    f"VmHWM {_s(p['after']['vmhwm_mib'], 'MiB', 0)}, now "
                    f"{_s(p['after']['vmrss_mib'], 'MiB', 0)} (Django alone "
                    f"{_s(p['after_django_setup']['vmrss_mib'], 'MiB', 0)})", "≤ 300 MB"))
    if mem.get("launcher_at_rest"):
        lr = mem["launcher_at_rest"]
        parts = ", ".join(f"{p['cmd'].split()[-1].split('.')[-1]} {p['rss_mib']:.0f}" for p in lr["processes"])
        out.append(("RSS of the launcher's processes at rest",
                    f"{_s(lr['total_mib'], 'MiB', 0)} RSS, {_s(lr.get('total_pss_mib'), 'MiB', 0)} PSS "
                    f"({parts})", "≤ 250 MiB in all"))
    if mem.get("bench_process"):
        b = mem["bench_process"]
        out.append(("peak RSS of this bench process",
                    f"VmHWM {_s(b['vmhwm_mib'], 'MiB', 0)} (cache {b.get('cache_objects', '?')} "
                    f"objects)", "(for reference)"))
    return out


def table(data: dict) -> str:
    body = rows(data)
    if not body:
        return "(no results)"
    widths = [max(len(row[i]) for row in body + [("Figure", "Measured", "Target")]) for i in range(3)]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(("Figure", "Measured", "Target")), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    return "\n".join(out)
