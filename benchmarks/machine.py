"""The machine a run happened on, and CPU time / resident memory of process trees from /proc."""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def facts() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    here = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "apps",
                            "gitops_ui"], cwd=here, capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "nproc_available": len(os.sched_getaffinity(0)),
        "cpu_model": model, "ram_total_mib": round(mem_kb / 1024),
        "kernel": platform.release(), "python": platform.python_version(), "git": git,
        "commit": commit + ("+changes" if dirty else ""),
        "load_at_start": loadavg(),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds incl. reaped children) of one process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw.rsplit(")", 1)[1].split()
    # after the comm: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
    ppid = int(fields[1])
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ppid, ticks / CLK_TCK


def tree(root: int) -> list[int]:
    """`root` and every process below it (children started in their own session included)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st:
            parents.setdefault(st[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(roots: list[int]) -> float:
    """utime+stime (plus that of reaped children) summed over the trees of `roots`."""
    total = 0.0
    for root in roots:
        for pid in tree(root):
            st = _stat(pid)
            if st:
                total += st[1]
    return total


def process_cpu_seconds(pid: int) -> float:
    """utime+stime (plus that of reaped children) of `pid` alone, not of the processes below it."""
    st = _stat(pid)
    return st[1] if st else 0.0


def status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cmd_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "?"
    argv = [a.decode(errors="replace") for a in argv if a]
    if len(argv) >= 3 and argv[1].endswith("manage.py"):
        return f"manage.py {argv[2]}"
    if len(argv) >= 3 and argv[1] == "-m":
        return argv[2]
    return Path(argv[0]).name if argv else "?"


def pss_kb(pid: int | str) -> int:
    """Proportional set size: shared pages (libpython, .so files) split between their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        pass
    return 0


def tree_rss(root: int) -> dict:
    """Resident (VmRSS) and proportional (Pss) memory of every process of the tree, MiB."""
    rows = []
    for pid in tree(root):
        kb = status_kb(pid, "VmRSS")
        if kb:
            rows.append({"pid": pid, "cmd": cmd_name(pid), "rss_mib": round(kb / 1024, 1),
                         "pss_mib": round(pss_kb(pid) / 1024, 1)})
    return {"total_mib": round(sum(r["rss_mib"] for r in rows), 1),
            "total_pss_mib": round(sum(r["pss_mib"] for r in rows), 1), "processes": rows}


def own_memory() -> dict:
    """VmRSS and its peak VmHWM; ru_maxrss too, but note that Linux carries it over execve from
    the process that forked us (a child of a 200 MB process starts at 200 MB), so for a
    subprocess VmHWM is the figure to read."""
    return {"vmrss_mib": round(status_kb("self", "VmRSS") / 1024, 1),
            "vmhwm_mib": round(status_kb("self", "VmHWM") / 1024, 1),
            "pss_mib": round(pss_kb("self") / 1024, 1),
            "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
