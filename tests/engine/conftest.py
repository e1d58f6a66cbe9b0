"""Engine tests run against the real control plane of the local stack."""
import itertools
import os

import pytest

from apps.engine.cache import LiveStateCache
from apps.engine.cluster import Cluster
from apps.engine.diff import Comparator

_ids = itertools.count()


@pytest.fixture(scope="session")
def cluster(kube) -> Cluster:
    return Cluster.from_kubeconfig(kube.kubeconfig_text(), name="local")


@pytest.fixture
def live_cache(cluster):
    cache = LiveStateCache(cluster)
    yield cache
    cache.stop()


@pytest.fixture
def comparator(cluster, live_cache) -> Comparator:
    return Comparator(cluster, live_cache)


@pytest.fixture
def app_name(request) -> str:
    """A unique application (and namespace) name per test."""
    return f"t{os.getpid() % 1000}-{next(_ids)}-{request.node.name[5:30]}".lower().replace("_", "-").strip("-")
