"""After a sync, its refresh compares with what the sync wrote: the watch cache is waited for
until it holds those versions (the real API server's watch, not a fixture)."""
from apps.engine.resources import key_of

from .manifests import configmap


def test_the_cache_is_waited_for_until_it_holds_what_was_written(cluster, live_cache, app_name):
    cluster.request("POST", "/api/v1/namespaces", body={"metadata": {"name": app_name}})
    cms = cluster.resource_for("v1", "ConfigMap")
    live_cache.ensure_watching([cms])
    obj = configmap("settings", color="blue")
    obj["metadata"]["namespace"] = app_name
    written = cluster.request_json("POST", cms.path(app_name), body=obj)
    version = written["metadata"]["resourceVersion"]

    assert live_cache.wait_until_seen({key_of(written): version}, timeout=10)
    assert live_cache.get(key_of(written))["metadata"]["resourceVersion"] == version

    # A version the server has not reached yet is waited for until the timeout, then False.
    assert not live_cache.wait_until_seen({key_of(written): str(int(version) + 10**9)},
                                          timeout=0.3)
    # A kind the cache does not watch is not waited for.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": app_name}}
    assert live_cache.wait_until_seen({key_of(secret): "1"}, timeout=0.3)
