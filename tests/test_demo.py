"""`make demo DEMO_ARGS=--once`, end to end: it starts its own stack and the platform, walks the
loop (tag build-1.0.0 → image built; tag push-1.0.0 → pushed → write-back commit → sync → pods),
reports each step and where to look, and stops everything."""
import os
import re
import subprocess
import sys

import pytest

from gitops_ui.env import BASE_DIR

pytestmark = pytest.mark.timeout(900)

DIGEST = r"sha256:[0-9a-f]{64}"


def test_the_demo_walks_the_loop_to_pods_running_the_pushed_image():
    # As a user starts it: nothing of the test session's stack or settings in its environment.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITOPS_UI_", "DATABASE_", "REDIS_", "DJANGO_"))}
    result = subprocess.run([sys.executable, "-m", "benchmarks.demo", "--once"], cwd=BASE_DIR,
                            env=env, capture_output=True, text=True, timeout=840)
    out = result.stdout
    assert result.returncode == 0, (out + result.stderr)[-6000:]

    built = re.search(r"build #(\d+) succeeded in [\d.]+ s: built with buildah \(kept in", out)
    assert built, out[-4000:]
    pushed = re.search(rf"build #(\d+) succeeded in [\d.]+ s: reused the image of build "
                       rf"#{built[1]}, pushed (\S+/team/hello:1\.0\.0)@({DIGEST})", out)
    assert pushed, out[-4000:]
    image, digest = pushed[2], pushed[3]
    assert re.search(r"write-back commit [0-9a-f]{8} pushed to \S+/deploy/hello\.git: .*"
                     r"newTag: 1\.0\.0", out), out[-4000:]
    assert re.search(rf"2/2 pods running {re.escape(image)}@{digest}: ", out), out[-4000:]

    login = re.search(r"dashboard +(http://127\.0\.0\.1:\d+)/ +\(user demo, password (\S+)\)", out)
    assert login, out[-4000:]
    url = login[1]
    for pk in (built[1], pushed[1]):
        assert f"{url}/builds/{pk}/" in out
    assert f"{url}/applications/hello/" in out
