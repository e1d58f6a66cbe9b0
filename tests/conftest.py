"""Shared test configuration. The real local stack's fixtures (`stack`, `postgres`,
`redis_server`, `registry`, `git_server`, `kube`, `buildah`) come from the plugin
tests/localstack/pytest_plugin.py, loaded through pyproject.toml; applications made of them
(`name`, `repo`, `cluster_record`, `make_app`) from tests/appstack.py."""

import pytest

pytest_plugins = ["tests.appstack"]


@pytest.fixture(scope="session", autouse=True)
def _close_stray_database_sessions(django_db_setup, django_db_blocker):
    """Threads the code under test starts (watchers, websocket consumers, operation runners)
    keep their own connections; end them before pytest-django drops the test database."""
    yield
    from django.db import connection

    from apps.clusters import services as clusters
    clusters.stop_all()  # watch threads end before the stack they watch goes away

    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
