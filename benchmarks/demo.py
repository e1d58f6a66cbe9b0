"""`make demo`: the build loop walked once on the local stack, with the platform running.

    python -m benchmarks.demo [--once]

Starts the local stack (PostgreSQL, Redis, the git server, the registry with a busybox base
image, buildah, a control plane with KWOK nodes) and the platform (`make run`'s launcher), seeds
a service repository (Dockerfile + app.txt) with tag rules build-* and push-*, a deploy repository
(a kustomization and a Deployment of the service's image), the registry, the cluster and the
application (benchmarks/pipeline.py, Loop), then walks the loop: tag build-1.0.0 → the image
built; tag push-1.0.0 → pushed → the write-back commit → the sync → pods running 1.0.0. Each tag
is pushed to the git server and GitLab's Tag Push Hook POSTed, as GitLab would.

Each step is printed as it happens, then where to look (the dashboard, a login made for the
demo, the build and application pages); the platform keeps running until Ctrl-C (with --once,
everything stops after the walk). Everything lives in a throwaway folder, removed on exit.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback

from .loop import Loop, wait_for
from .system import System

VERSION = "1.0.0"
APP = "hello"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start(system: System) -> str:
    """The stack, Django here, a login for the demo, the launcher; the login's password."""
    system.start_stack()
    for name in ("registry", "buildah"):
        say(f"starting {name}…")
        system.get(name)
    system.setup_django()
    from apps.accounts.services import ensure_admin

    # Made before the launcher starts, whose ensure_admin then finds an admin and makes none.
    password = ensure_admin("demo")
    say("starting the platform (web, engine, the build worker on demand)…")
    system.start_launcher()
    say(f"the platform is up on {system.base_url}")
    return password


def walk(loop: Loop, url: str) -> dict:
    """The loop once; what the summary points at."""
    sha = loop.service_sha
    seen = {"builds": []}
    for tag in (f"build-{VERSION}", f"push-{VERSION}"):
        t0 = time.time()
        after = loop.push_tag(tag, sha)
        say(f"pushed tag {tag} at {sha[:8]} to {loop.service.url}")
        _, answered, pks = loop.post_tag_hook(tag, sha, after)
        say(f"GitLab's Tag Push Hook POSTed: answered in {answered * 1000:.0f} ms, build "
            f"#{pks[0]} queued — {url}/builds/{pks[0]}/")
        running = loop.wait_build(pks[0], started=True)
        say(f"build #{running.pk} {running.status} ({running.started_at.timestamp() - t0:.2f} s "
            f"after the tag push): {running.action} {running.image}")
        build = loop.wait_build(pks[0])
        seen["builds"].append(build.pk)
        if build.status != "succeeded":
            tail = "\n".join(build.log.splitlines()[-30:])
            raise RuntimeError(f"build #{build.pk} {build.status}: {build.message}\n{tail}")
        how = f"reused the image of build #{build.reused_from_id}" if build.reused_from_id \
            else "built with buildah"
        pushed = f", pushed {build.image}@{build.digest} ({build.size or 0} bytes)" \
            if build.digest else " (kept in the build worker's storage, not pushed)"
        say(f"build #{build.pk} succeeded in {build.duration:.1f} s: {how}{pushed}")
    image = f"{loop.image}:{VERSION}"
    commit = wait_for("the write-back commit", lambda: loop.write_back_commit(VERSION), 300, 0.2)
    loop.deploy._git("fetch", "-q", "origin", "main")
    diff = loop.deploy._git("show", "--format=", "-U0", commit, "--",
                            f"{APP}/kustomization.yaml").splitlines()
    removed, added = ([line[1:].strip() for line in diff
                       if line[:1] == sign and line[:3] != sign * 3] for sign in "-+")
    subject = loop.deploy._git("log", "-1", "--format=%s (%an)", commit)
    say(f"write-back commit {commit[:8]} pushed to {loop.deploy.url}: \"{subject}\"; "
        f"{APP}/kustomization.yaml: {', '.join(removed)} → {', '.join(added)}")
    wait_for(f"{APP} synced", lambda: loop.synced(commit), 300, 0.2)
    say(f"application {APP} synced to {commit[:8]} (automated sync), Healthy")
    pods = loop.wait_pods(image, 300)
    shown = ", ".join(f"{p['metadata']['name']} on {p['spec'].get('nodeName', '?')}" for p in pods)
    say(f"{len(pods)}/{loop.replicas} pods running {pods[0]['spec']['containers'][0]['image']}: "
        f"{shown}")
    return seen


def where_to_look(url: str, password: str, seen: dict) -> None:
    builds = ", ".join(f"{url}/builds/{pk}/" for pk in seen["builds"])
    print(f"""
Where to look:
  dashboard      {url}/   (user demo, password {password})
  builds         {url}/builds/  ({builds}: log, image, digest)
  application    {url}/applications/{APP}/  (resources, pods on {VERSION}, history)
  repositories   {url}/repositories/  (the service repository's tag rules)
  audit log      {url}/audit/
""", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true",
                        help="stop everything after the walk instead of waiting for Ctrl-C")
    args = parser.parse_args(argv)

    def on_sigterm(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    system, status = System(), 0
    try:
        password = start(system)
        url = system.base_url
        loop = Loop(system, APP, replicas=2, say=say)
        loop.seed()
        seen = walk(loop, url)
        say(f"done: tag push-{VERSION} → build → push → write-back → sync → pods on {VERSION}")
        where_to_look(url, password, seen)
        if not args.once:
            say("the platform keeps running; Ctrl-C stops everything")
            while system.launcher_running():
                time.sleep(1)
            say(f"the launcher stopped:\n{system.launcher_tail()}")
            status = 1
    except KeyboardInterrupt:
        say("stopping…")
    except Exception:
        traceback.print_exc()
        if system.launcher_log:
            say(f"launcher log tail:\n{system.launcher_tail()}")
        status = 1
    finally:
        system.close_uninterrupted()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
