"""ignoreDifferences by jq path expressions and by field managers, on the real control plane.

The drift is made the way it happens in a cluster: a controller scaling through the `scale`
subresource (as the HPA does), another manager rewriting an image or an env var, a sidecar
injected. The managedFields read are the ones the API server wrote.
"""
import pytest

from apps.applications.models import Application
from apps.clusters import services as clusters
from apps.engine.ignore import IgnoreRule
from apps.engine.resources import ResourceKey
from apps.engine.sync import SyncOperation, SyncOptions
from tests.appstack import refreshed
from tests.waiting import until

from .manifests import configmap, deployment
from .test_sync import sync

def compare(comparator, app, manifests, *rules):
    """Compare (the comparator itself catches up with writes its watch has not seen yet)."""
    return comparator.compare(app, manifests, namespace=app, ignore=list(rules))


def scale(cluster, namespace, deployment_name, replicas, manager):
    """What the HPA controller does: an update of the scale subresource under its own name."""
    path = cluster.resource_for("apps/v1", "Deployment").path(namespace, deployment_name) + "/scale"
    cluster.request("PATCH", path, params={"fieldManager": manager},
                    body={"spec": {"replicas": replicas}},
                    content_type="application/merge-patch+json")


def web(comparison):
    [state] = [r for r in comparison.resources if r.key.kind == "Deployment"]
    return state


def test_replicas_owned_by_a_trusted_manager_are_ignored(cluster, comparator, app_name):
    manifests = [deployment("web", replicas=1)]
    assert sync(cluster, comparator, app_name, manifests)[1].phase == "Succeeded"
    scale(cluster, app_name, "web", 3, "horizontal-pod-autoscaler")
    until(lambda: comparator.compare(app_name, manifests, namespace=app_name),
          lambda c: web(c).live["spec"]["replicas"] == 3)

    without = compare(comparator, app_name, manifests)
    assert (without.sync, web(without).differences) == ("OutOfSync", ["/spec/replicas"])
    # Trusting some other manager changes nothing: only the owner's fields are left out.
    other = compare(comparator, app_name, manifests,
                    IgnoreRule("Deployment", group="apps", managed_fields_managers=("kubectl",)))
    assert other.sync == "OutOfSync"
    trusted = compare(comparator, app_name, manifests, IgnoreRule(
        "Deployment", group="apps", managed_fields_managers=("horizontal-pod-autoscaler",)))
    assert trusted.sync == "Synced", web(trusted).differences
    assert web(trusted).live["spec"]["replicas"] == 3

    # A real change in Git on the same object is still seen.
    changed = [deployment("web", replicas=1, image="nginx:1.28")]
    rule = IgnoreRule("Deployment", group="apps",
                      managed_fields_managers=("horizontal-pod-autoscaler",))
    assert web(compare(comparator, app_name, changed, rule)).differences == [
        "/spec/template/spec/containers/0/image"]


def test_apply_out_of_sync_only_does_not_touch_an_ignored_difference(cluster, comparator,
                                                                      app_name):
    manifests = [deployment("web", replicas=1), configmap("settings", k="v1")]
    assert sync(cluster, comparator, app_name, manifests)[1].phase == "Succeeded"
    scale(cluster, app_name, "web", 3, "horizontal-pod-autoscaler")
    rule = IgnoreRule("Deployment", group="apps",
                      managed_fields_managers=("horizontal-pod-autoscaler",))
    until(lambda: comparator.compare(app_name, manifests, namespace=app_name),
          lambda c: web(c).live["spec"]["replicas"] == 3)

    changed = [deployment("web", replicas=1), configmap("settings", k="v2")]
    comparison = compare(comparator, app_name, changed, rule)
    assert [str(r.key.kind) for r in comparison.out_of_sync()] == ["ConfigMap"]
    result = SyncOperation(cluster, app_name, comparison, app_name,
                           SyncOptions(apply_out_of_sync_only=True)).run()
    assert result.phase == "Succeeded", result.message
    assert {r.key.kind for r in result.resources} == {"ConfigMap"}
    deployments = cluster.resource_for("apps/v1", "Deployment")
    assert cluster.get(deployments, app_name, "web")["spec"]["replicas"] == 3
    configmaps = cluster.resource_for("v1", "ConfigMap")
    assert cluster.get(configmaps, app_name, "settings")["data"] == {"k": "v2"}


def test_jq_expressions_ignore_an_edited_env_var_and_a_rewritten_image(
        cluster, comparator, app_name):
    manifest = deployment("web")
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}]
    manifests = [manifest]
    assert sync(cluster, comparator, app_name, manifests)[1].phase == "Succeeded"
    # An admission-style rewrite of the image (a registry mirror) and a hand edit of one env
    # var, by another manager, plus a sidecar it injects.
    inject(cluster, app_name, [{"name": "main", "image": "mirror.local/nginx:1.27",
                                "env": [{"name": "LOG_LEVEL", "value": "debug"}]},
                               {"name": "injected", "image": "busybox"}])

    without = compare(comparator, app_name, manifests)
    assert web(without).differences == ["/spec/template/spec/containers/0/env/0/value",
                                         "/spec/template/spec/containers/0/image"]
    image = IgnoreRule("Deployment", group="apps", jq_path_expressions=(
        '.spec.template.spec.containers[] | select(.name == "main") | .image',))
    env = IgnoreRule("Deployment", group="apps", jq_path_expressions=(
        '.spec.template.spec.containers[].env[]? | select(.name == "LOG_LEVEL")',))
    assert web(compare(comparator, app_name, manifests, image)).differences == [
        "/spec/template/spec/containers/0/env/0/value"]
    both = compare(comparator, app_name, manifests, image, env)
    assert both.sync == "Synced", web(both).differences
    # An expression that fits nothing in this object (it iterates a missing field) is no error.
    missing = IgnoreRule("Deployment", group="apps", jq_path_expressions=(
        '.spec.template.spec.initContainers[] | select(.name == "x")',))
    assert compare(comparator, app_name, manifests, image, env, missing).sync == "Synced"
    # A change in Git to what the expressions do not cover still shows. (Pointers are into the
    # documents as compared, without the ignored items: REGION is env/0 there.)
    manifest["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "us"
    changed = compare(comparator, app_name, manifests, image, env)
    assert (changed.sync, web(changed).differences) == (
        "OutOfSync", ["/spec/template/spec/containers/0/env/0/value"])


def test_a_container_another_manager_injects_is_no_drift_even_without_a_rule(
        cluster, comparator, app_name):
    """The server's dry run keeps every other manager's fields, so a sidecar injected next to
    ours is not a difference at all; a rule is needed only for fields Git also sets."""
    manifests = [deployment("web")]
    assert sync(cluster, comparator, app_name, manifests)[1].phase == "Succeeded"
    inject(cluster, app_name, [{"name": "injected", "image": "busybox"}])
    comparison = compare(comparator, app_name, manifests)
    assert len(web(comparison).live["spec"]["template"]["spec"]["containers"]) == 2
    assert comparison.sync == "Synced", web(comparison).differences


def test_a_field_inside_a_list_item_owned_by_a_trusted_manager_is_ignored(
        cluster, comparator, app_name):
    manifests = [deployment("web")]
    assert sync(cluster, comparator, app_name, manifests)[1].phase == "Succeeded"
    updater = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": app_name},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "main", "image": "nginx:1.29"}]}}}}
    cluster.apply(updater, "image-updater")  # forced: it takes the image over from us
    until(lambda: comparator.compare(app_name, manifests, namespace=app_name),
          lambda c: web(c).live["spec"]["template"]["spec"]["containers"][0]["image"]
          == "nginx:1.29")

    assert web(compare(comparator, app_name, manifests)).differences == [
        "/spec/template/spec/containers/0/image"]
    trusted = compare(comparator, app_name, manifests, IgnoreRule(
        "Deployment", group="apps", managed_fields_managers=("image-updater",)))
    assert trusted.sync == "Synced", web(trusted).differences


def inject(cluster, namespace, containers):
    """Another manager merges these containers into the Deployment's (by name)."""
    deployments = cluster.resource_for("apps/v1", "Deployment")
    cluster.request("PATCH", deployments.path(namespace, "web"),
                    params={"fieldManager": "injector"},
                    body={"spec": {"template": {"spec": {"containers": containers}}}},
                    content_type="application/strategic-merge-patch+json")


# --- through an application: refresh and self-heal ----------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
def test_self_heal_leaves_what_ignore_differences_ignores(repo, make_app):
    repo.push({"web.yaml": deployment("web", replicas=1)})
    app = make_app(repo, automated=True, self_heal=True, ignore_differences=[
        {"group": "apps", "kind": "Deployment",
         "managedFieldsManagers": ["horizontal-pod-autoscaler"]}])
    try:
        heal_or_not(app)
    finally:
        clusters.forget(app.cluster_id)  # its watches would call back into later tests


def heal_or_not(app):
    refreshed(app)  # the first automated sync
    engine = clusters.runtime(app.cluster).cluster
    app = until(lambda: refreshed(app), lambda a: a.sync_status == "Synced")
    syncs = app.operations.count()

    scale(engine, app.namespace, "web", 4, "horizontal-pod-autoscaler")
    deployments = engine.resource_for("apps/v1", "Deployment")
    # Refresh only once this process's watch has the change, or the refresh compares nothing new.
    cache = clusters.runtime(app.cluster).cache
    key = ResourceKey("apps", "Deployment", app.namespace, "web")
    until(lambda: cache.get(key), lambda d: d["spec"]["replicas"] == 4, timeout=10)
    app = refreshed(app)
    assert app.sync_status == "Synced", app.resources
    assert app.resources[0]["status"] == "Synced"
    assert app.operations.count() == syncs  # no self-heal sync started
    assert engine.get(deployments, app.namespace, "web")["spec"]["replicas"] == 4

    # Without the rule the same drift is healed: the test above is not vacuous.
    Application.objects.filter(pk=app.pk).update(ignore_differences=[])
    until(lambda: refreshed(app),
          lambda a: engine.get(deployments, a.namespace, "web")["spec"]["replicas"] == 1)
    assert engine.get(deployments, app.namespace, "web")["spec"]["replicas"] == 1
    assert app.operations.count() == syncs + 1
