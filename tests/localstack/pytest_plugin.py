"""pytest plugin (loaded with `-p`, see pyproject.toml): the real local stack as fixtures.

PostgreSQL and Redis start before pytest-django sets Django up, and DATABASE_URL/REDIS_URL are
exported, so settings read them exactly as they do in production: the suite runs on PostgreSQL.
Every other component starts the first time a test asks for its fixture. When a test fails, the
tail of every running component's log is added to its report.

The stack stops however the run ends: at the end, on Ctrl-C, on SIGTERM (what a CI timeout
sends: turned into an interruption, so fixtures are torn down and the stack stopped in order),
when starting pytest fails half-way, and, if pytest is killed outright, by the parent-death
signal every component gets (tests/localstack/process.py).
"""
from __future__ import annotations

import atexit
import os
import signal

import pytest

from . import LocalStack
from .process import tail

_stack: LocalStack | None = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A wrapper runs before every plain implementation, pytest-django's django.setup() included.
    global _stack
    signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(_stop_stack)
    _stack = LocalStack(keep=bool(os.environ.get("GITOPS_UI_KEEP_STACK")))
    try:
        os.environ["DATABASE_URL"] = _stack.get("postgres").url
        os.environ["REDIS_URL"] = _stack.get("redis").url
        # Generated secrets and clone caches of this run, not those of the developer's `make run`.
        os.environ["GITOPS_UI_DATA_DIR"] = str(_stack.workdir / "data")
        return (yield)
    except BaseException:  # e.g. Django's setup failing: nothing would stop the stack later
        _stop_stack()
        raise


def pytest_unconfigure(config):
    _stop_stack()


def _stop_stack() -> None:
    global _stack
    if _stack is None:
        return
    stack, _stack = _stack, None
    if stack.keep:
        print(f"\nlocal stack kept in {stack.workdir}")
    # A second SIGTERM must not cut the stop short (the parent-death signal is the backstop).
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        stack.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def stack() -> LocalStack:
    return _stack


@pytest.fixture(scope="session")
def postgres(stack):
    return stack.get("postgres")


@pytest.fixture(scope="session")
def redis_server(stack):
    return stack.get("redis")


@pytest.fixture(scope="session")
def registry(stack):
    return stack.get("registry")


@pytest.fixture(scope="session")
def git_server(stack):
    return stack.get("git")


@pytest.fixture(scope="session")
def ssh_git_server(stack):
    return stack.get("sshd")


@pytest.fixture(scope="session")
def kube(stack):
    return stack.get("kube")


@pytest.fixture(scope="session")
def buildah(stack):
    return stack.get("buildah")


@pytest.fixture(scope="session")
def process_node(stack):
    """A node of the control plane that really runs kaniko executor pods (process_node.py)."""
    return stack.get("process-node")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _stack is not None:
        for log in _stack.logs():
            report.sections.append((f"stack log {log.name}", tail(log, 30)))
    return report
