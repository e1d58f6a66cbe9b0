"""Compare and sync on the real control plane: the core loop of the engine."""

import pytest

from apps.engine.cache import LiveStateCache
from apps.engine.cluster import Cluster
from apps.engine.diff import Comparator, IgnoreRule
from apps.engine.errors import ClusterError
from apps.engine.resources import ResourceKey
from apps.engine.sync import SyncOperation, SyncOptions

from tests.waiting import until

from .manifests import configmap, cronjob, deployment, job, service, statefulset


def sync(cluster, comparator, app, manifests, **options):
    comparison = comparator.compare(app, manifests, namespace=app)
    options.setdefault("create_namespace", True)
    result = SyncOperation(cluster, app, comparison, app, SyncOptions(**options)).run()
    return comparison, result


eventually = until  # re-compare until it holds: the watch cache needs a moment


def by_kind(comparison, kind):
    return [r for r in comparison.resources if r.key.kind == kind]


def test_new_app_is_out_of_sync_then_synced_and_healthy(cluster, comparator, app_name):
    manifests = [deployment("web", replicas=2), service("web"), configmap("settings")]
    before = comparator.compare(app_name, manifests, namespace=app_name)
    assert before.sync == "OutOfSync"
    assert {r.health.status for r in before.resources} == {"Missing"}

    _, result = sync(cluster, comparator, app_name, manifests)
    assert result.phase == "Succeeded", result.message

    after = eventually(lambda: comparator.compare(app_name, manifests, namespace=app_name),
                       lambda c: c.sync == "Synced" and c.health == "Healthy")
    assert after.sync == "Synced", [(str(r.key), r.differences) for r in after.out_of_sync()]
    assert after.health == "Healthy"
    dep = cluster.get(cluster.resource_for("apps/v1", "Deployment"), app_name, "web")
    assert dep["status"]["availableReplicas"] == 2


def test_no_false_drift_for_kinds_the_api_server_defaults(cluster, comparator, app_name):
    manifests = [deployment("d"), service("s"), statefulset("st"), job("j"), cronjob("c")]
    _, result = sync(cluster, comparator, app_name, manifests)
    assert result.phase == "Succeeded", result.message
    after = eventually(lambda: comparator.compare(app_name, manifests, namespace=app_name),
                       lambda c: c.sync == "Synced")
    assert {str(r.key): r.differences for r in after.out_of_sync()} == {}


def test_changed_image_shows_why_and_sync_applies_it(cluster, comparator, app_name):
    sync(cluster, comparator, app_name, [deployment("web")])
    changed = [deployment("web", image="nginx:1.28")]
    comparison = eventually(lambda: comparator.compare(app_name, changed, namespace=app_name),
                            lambda c: c.sync == "OutOfSync" and c.resources[0].live is not None)
    assert comparison.resources[0].differences == ["/spec/template/spec/containers/0/image"]
    _, result = sync(cluster, comparator, app_name, changed)
    assert result.phase == "Succeeded"
    live = cluster.get(cluster.resource_for("apps/v1", "Deployment"), app_name, "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


def test_objects_removed_from_git_are_pruned_unless_told_not_to(cluster, comparator, app_name):
    keep_me = configmap("keep", {"argocd.argoproj.io/sync-options": "Prune=false"})
    sync(cluster, comparator, app_name, [configmap("a"), configmap("gone"), keep_me])
    cms = cluster.resource_for("v1", "ConfigMap")

    comparison = eventually(lambda: comparator.compare(app_name, [configmap("a")], namespace=app_name),
                            lambda c: sum(r.requires_pruning for r in c.resources) == 2)
    assert {r.key.name for r in comparison.resources if r.requires_pruning} == {"gone", "keep"}

    _, without_prune = sync(cluster, comparator, app_name, [configmap("a")])
    assert cluster.get(cms, app_name, "gone") is not None  # prune not asked for
    assert {r.key.name: r.status for r in without_prune.resources if r.action == "prune"} == \
        {"gone": "PruneSkipped", "keep": "PruneSkipped"}

    _, result = sync(cluster, comparator, app_name, [configmap("a")], prune=True)
    assert result.phase == "Succeeded", result.message
    assert {r.key.name: r.status for r in result.resources if r.action == "prune"} == \
        {"gone": "Pruned", "keep": "PruneSkipped"}
    # Foreground deletion: the garbage collector removes it a moment later
    assert eventually(lambda: cluster.get(cms, app_name, "gone"), lambda live: live is None) is None
    assert cluster.get(cms, app_name, "keep") is not None


def test_hand_edit_is_seen_through_the_watch_and_sync_reverts_it(cluster, app_name):
    changes = []
    cache = LiveStateCache(cluster, on_change=lambda key, obj, deleted: changes.append(key))
    comparator = Comparator(cluster, cache)
    try:
        manifests = [deployment("web", replicas=2)]
        sync(cluster, comparator, app_name, manifests)
        deployments = cluster.resource_for("apps/v1", "Deployment")
        cluster.request("PATCH", deployments.path(app_name, "web"), body={"spec": {"replicas": 5}},
                        content_type="application/merge-patch+json")

        # Until the watch has delivered the created object, it reads as missing: wait for it.
        drifted = eventually(lambda: comparator.compare(app_name, manifests, namespace=app_name),
                             lambda c: c.resources[0].live is not None and c.sync == "OutOfSync")
        assert drifted.resources[0].differences == ["/spec/replicas"]
        assert ResourceKey("apps", "Deployment", app_name, "web") in changes

        _, result = sync(cluster, comparator, app_name, manifests)  # what self-heal does
        assert result.phase == "Succeeded"
        assert cluster.get(deployments, app_name, "web")["spec"]["replicas"] == 2
    finally:
        cache.stop()


def test_replace_resource_is_synced_after_its_sync(cluster, comparator, app_name):
    """A PUT would drop the revision annotation the controller writes: no lasting drift."""
    manifests = [deployment("web", **{"argocd.argoproj.io/sync-options": "Replace=true"})]
    _, result = sync(cluster, comparator, app_name, manifests)
    assert result.phase == "Succeeded", result.message
    deployments = cluster.resource_for("apps/v1", "Deployment")
    until(lambda: cluster.get(deployments, app_name, "web"),
          lambda live: "deployment.kubernetes.io/revision" in live["metadata"].get("annotations", {}))
    after = eventually(lambda: comparator.compare(app_name, manifests, namespace=app_name),
                       lambda c: c.sync == "Synced")
    assert after.sync == "Synced", [(str(r.key), r.differences) for r in after.out_of_sync()]


def test_ignore_differences_by_json_pointer(cluster, comparator, app_name):
    manifests = [deployment("web", replicas=2)]
    sync(cluster, comparator, app_name, manifests)
    deployments = cluster.resource_for("apps/v1", "Deployment")
    cluster.request("PATCH", deployments.path(app_name, "web"), body={"spec": {"replicas": 4}},
                    content_type="application/merge-patch+json")
    ignore = [IgnoreRule("Deployment", ("/spec/replicas",), group="apps")]
    comparison = eventually(
        lambda: comparator.compare(app_name, manifests, namespace=app_name, ignore=ignore),
        lambda c: c.resources[0].live is not None and c.resources[0].live["spec"]["replicas"] == 4)
    assert comparison.sync == "Synced"


def test_waves_and_hooks_run_in_order(cluster, comparator, app_name):
    order = []

    class Recording(Cluster):
        def apply(self, obj, field_manager, dry_run=False, force=True):
            if not dry_run:
                order.append(obj["metadata"]["name"])
            return super().apply(obj, field_manager, dry_run, force)

    recording = Recording(cluster.credentials, name="local")
    hook = lambda name, phase: job(name, {"argocd.argoproj.io/hook": phase,
                                          "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"})
    manifests = [
        configmap("late", {"argocd.argoproj.io/sync-wave": "2"}),
        configmap("middle"),
        configmap("early", {"argocd.argoproj.io/sync-wave": "-1"}),
        hook("post", "PostSync"), hook("pre", "PreSync"),
    ]
    comparison = comparator.compare(app_name, manifests, namespace=app_name)
    assert len(comparison.hooks) == 2 and len(comparison.resources) == 3
    result = SyncOperation(recording, app_name, comparison, app_name,
                           SyncOptions(create_namespace=True)).run()
    assert result.phase == "Succeeded", result.message
    assert order == [app_name, "pre", "early", "middle", "late", "post"]  # namespace first
    hooks = {r.key.name: r.status for r in result.resources if r.action == "hook"}
    assert hooks == {"pre": "Succeeded", "post": "Succeeded"}
    # HookSucceeded: the finished hook Jobs are deleted
    jobs = cluster.resource_for("batch/v1", "Job")
    assert eventually(lambda: cluster.get(jobs, app_name, "pre"), lambda live: live is None,
                      timeout=30) is None


def test_failing_pre_sync_hook_stops_the_sync(cluster, comparator, app_name):
    # No node matches: the Job's pod never runs and the deadline fails the Job, as a real
    # failing migration would.
    failing = job("migrate", {"argocd.argoproj.io/hook": "PreSync"},
                  node_selector={"no-such-node": "x"}, deadline=2)
    manifests = [failing, configmap("app-config")]
    comparison = comparator.compare(app_name, manifests, namespace=app_name)
    result = SyncOperation(cluster, app_name, comparison, app_name,
                           SyncOptions(create_namespace=True, health_timeout=60)).run()
    assert result.phase == "Failed"
    assert "migrate" in result.message
    assert cluster.get(cluster.resource_for("v1", "ConfigMap"), app_name, "app-config") is None


def test_invalid_manifest_leaves_nothing_applied(cluster, comparator, app_name):
    """A new app's first sync (one step, into the namespace it creates) is applied without a
    dry run first; when the server refuses an object, what was created is deleted again."""
    bad = deployment("bad")
    bad["spec"]["replicas"] = "three"
    manifests = [configmap("first"), bad]
    _, result = sync(cluster, comparator, app_name, manifests)
    assert result.phase == "Failed"
    assert "nothing is left applied" in result.message
    assert ".spec.replicas: expected numeric" in result.message
    assert cluster.get(cluster.resource_for("v1", "ConfigMap"), app_name, "first") is None
    first = next(r for r in result.resources if r.key.name == "first")
    assert first.status == "SyncFailed" and "deleted again" in first.message

    # Now that the namespace exists, the comparison itself shows the error on the resource.
    comparison = comparator.compare(app_name, manifests, namespace=app_name)
    bad_state = next(r for r in comparison.resources if r.key.name == "bad")
    assert ".spec.replicas: expected numeric" in bad_state.error
    assert comparison.sync == "OutOfSync" and comparison.errors


def test_invalid_manifest_in_a_later_wave_fails_before_anything_is_applied(cluster, comparator,
                                                                            app_name):
    """Two steps: the first would be applied (and waited for) before the second is refused, so
    every object is dry-run first."""
    bad = deployment("bad")
    bad["spec"]["replicas"] = "three"
    bad["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "1"}
    _, result = sync(cluster, comparator, app_name, [configmap("first"), bad])
    assert result.phase == "Failed"
    assert "nothing was applied" in result.message
    assert ".spec.replicas: expected numeric" in result.message
    assert cluster.get(cluster.resource_for("v1", "ConfigMap"), app_name, "first") is None


def test_unknown_kind_is_a_comparison_error(cluster, comparator, app_name):
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    comparison = comparator.compare(app_name, [widget, configmap("c")], namespace=app_name)
    assert comparison.sync == "OutOfSync"
    assert any("Widget" in e and "CustomResourceDefinition" in e for e in comparison.errors)
    _, result = sync(cluster, comparator, app_name, [widget, configmap("c")])
    assert result.phase == "Failed"
    assert cluster.get(cluster.resource_for("v1", "ConfigMap"), app_name, "c") is None


def test_dry_run_and_selective_sync(cluster, comparator, app_name):
    manifests = [configmap("one"), configmap("two")]
    _, dry = sync(cluster, comparator, app_name, manifests, dry_run=True)
    assert dry.phase == "Succeeded"
    cms = cluster.resource_for("v1", "ConfigMap")
    assert cluster.get(cms, app_name, "one") is None

    only_one = {ResourceKey("", "ConfigMap", app_name, "one")}
    _, result = sync(cluster, comparator, app_name, manifests, resources=only_one)
    assert result.phase == "Succeeded"
    assert cluster.get(cms, app_name, "one") is not None
    assert cluster.get(cms, app_name, "two") is None


def test_unreachable_cluster_raises_cluster_error(kube):
    from tests.localstack.process import free_port

    dead = Cluster.from_token(f"https://127.0.0.1:{free_port()}", "secret-token-value", insecure=True)
    with pytest.raises(ClusterError) as info:
        Comparator(dead, LiveStateCache(dead)).compare("x", [configmap("c")], namespace="x")
    assert "cannot reach" in str(info.value)
    assert "secret-token-value" not in str(info.value)


def test_crd_and_its_custom_resources_sync_together(cluster, comparator, app_name):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{app_name}.example.com"},
           "spec": {"group": f"{app_name}.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                            "type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}
    widget = {"apiVersion": f"{app_name}.example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1"}, "spec": {"size": 3}}
    comparison = comparator.compare(app_name, [widget, crd], namespace=app_name)
    assert comparison.errors == []  # the CRD in the same set defines the kind
    _, result = sync(cluster, comparator, app_name, [widget, crd])
    assert result.phase == "Succeeded", result.message
    live = cluster.get(cluster.resource_for(widget["apiVersion"], "Widget"), app_name, "w1")
    assert live["spec"]["size"] == 3
    after = eventually(lambda: comparator.compare(app_name, [widget, crd], namespace=app_name),
                       lambda c: c.sync == "Synced")
    assert after.sync == "Synced", [(str(r.key), r.differences) for r in after.out_of_sync()]


def test_sync_fail_hook_runs_when_the_sync_fails(cluster, comparator, app_name):
    failing = job("migrate", {"argocd.argoproj.io/hook": "PreSync"},
                  node_selector={"no-such-node": "x"}, deadline=2)
    on_fail = configmap("sync-failed", {"argocd.argoproj.io/hook": "SyncFail"})
    comparison = comparator.compare(app_name, [failing, on_fail], namespace=app_name)
    result = SyncOperation(cluster, app_name, comparison, app_name,
                           SyncOptions(create_namespace=True, health_timeout=60)).run()
    assert result.phase == "Failed"
    assert cluster.get(cluster.resource_for("v1", "ConfigMap"), app_name, "sync-failed") is not None
    assert {r.key.name: r.status for r in result.resources if r.phase == "SyncFail"} == \
        {"sync-failed": "Succeeded"}


def test_an_unavailable_aggregated_api_does_not_break_discovery(kube, app_name):
    """A broken APIService (its Service missing) answers 503; every other kind stays usable."""
    engine = Cluster.from_kubeconfig(kube.kubeconfig_text(), name="fresh")
    group = f"{app_name}.example.com"
    path = "/apis/apiregistration.k8s.io/v1/apiservices"
    engine.request("POST", path, body={
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": f"v1.{group}"},
        "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10,
                 "insecureSkipTLSVerify": True,
                 "service": {"name": "missing", "namespace": "default", "port": 443}}})
    try:
        until(lambda: engine.request_json("GET", "/apis"),
              lambda listing: any(g["name"] == group for g in listing["groups"]), timeout=10)
        assert engine.resource_for("v1", "ConfigMap").plural == "configmaps"
    finally:
        engine.request("DELETE", f"{path}/v1.{group}")
