"""`make stack`: start every part of the local stack, print how to reach it, wait for Ctrl-C.

    python -m tests.localstack [component ...]     (default: all of them)
"""
import json
import signal
import sys
import threading

from . import COMPONENTS, LocalStack


def main(names: list[str]) -> None:
    stack = LocalStack(keep=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for name in names or list(COMPONENTS):
            print(f"starting {name}…", file=sys.stderr, flush=True)
            stack.get(name)
        print(json.dumps(stack.info(), indent=2), flush=True)
        print(f"logs in {stack.log_dir}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
