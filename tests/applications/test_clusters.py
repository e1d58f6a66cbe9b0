"""Cluster records."""
import pytest

from apps.clusters import services as clusters
from apps.clusters.models import Cluster

# Not transactional: pytest-django runs these before the tests that flush every table, so the
# row the migration adds is still there.
pytestmark = pytest.mark.django_db


def test_in_cluster_default_exists_and_says_why_it_cannot_connect_here():
    in_cluster = Cluster.objects.get(name="in-cluster")
    assert in_cluster.auth == Cluster.Auth.IN_CLUSTER
    # The tests do not run inside a pod: the check fails with a reason instead of crashing.
    assert clusters.check_connection(in_cluster) is False
    in_cluster.refresh_from_db()
    assert in_cluster.connection_status == "Failed"
    assert "not running inside a cluster" in in_cluster.connection_message
