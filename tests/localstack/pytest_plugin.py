"""pytest plugin (loaded with `-p`, see pyproject.toml): the real local stack as fixtures.

PostgreSQL and Redis start before pytest-django sets Django up, and DATABASE_URL/REDIS_URL are
exported, so settings read them exactly as they do in production: the suite runs on PostgreSQL.
Every other component starts the first time a test asks for its fixture. When a test fails, the
tail of every running component's log is added to its report.
"""
from __future__ import annotations

import os

import pytest

from . import LocalStack
from .process import tail

_stack: LocalStack | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A wrapper runs before every plain implementation, pytest-django's django.setup() included.
    global _stack
    _stack = LocalStack(keep=bool(os.environ.get("GITOPS_UI_KEEP_STACK")))
    try:
        os.environ["DATABASE_URL"] = _stack.get("postgres").url
        os.environ["REDIS_URL"] = _stack.get("redis").url
    except BaseException:
        _stack.stop()
        raise
    return (yield)


def pytest_unconfigure(config):
    global _stack
    if _stack is not None:
        if _stack.keep:
            print(f"\nlocal stack kept in {_stack.workdir}")
        _stack.stop()
        _stack = None


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
def kube(stack):
    return stack.get("kube")


@pytest.fixture(scope="session")
def buildah(stack):
    return stack.get("buildah")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _stack is not None:
        for log in _stack.logs():
            report.sections.append((f"stack log {log.name}", tail(log, 30)))
    return report
