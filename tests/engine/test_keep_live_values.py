"""RespectIgnoreDifferences: the manifest a sync applies keeps the live values of what
ignoreDifferences ignores (Argo CD's normalised target), and Git's for the rest."""
from apps.engine.ignore import IgnoreRule, keep_live_values


def test_ignored_values_come_from_live_and_the_rest_from_git():
    desired = {"spec": {"replicas": 2, "image": "web:2", "paused": True},
               "metadata": {"annotations": {"a": "git", "b": "git"}}}
    live = {"spec": {"replicas": 5, "image": "web:1"},
            "metadata": {"annotations": {"a": "live", "b": "live"}}, "status": {"ready": 1}}
    rules = [IgnoreRule("Deployment", ("/spec/replicas", "/spec/paused"),
                        jq_path_expressions=('.metadata.annotations["a"]',))]
    assert keep_live_values(desired, live, rules) == {
        "spec": {"replicas": 5, "image": "web:2"},  # paused: ignored and not live, so left out
        "metadata": {"annotations": {"a": "live", "b": "git"}}}
    assert desired["spec"]["replicas"] == 2  # Git's manifest itself is left as it was


def test_items_inside_lists_of_the_same_length_are_kept_one_by_one():
    desired = {"containers": [{"name": "a", "image": "a:2", "resources": {"cpu": "1"}}]}
    live = {"containers": [{"name": "a", "image": "a:1", "resources": {"cpu": "3"}}]}
    rules = [IgnoreRule("Deployment", jq_path_expressions=(".containers[].resources",))]
    assert keep_live_values(desired, live, rules) == {
        "containers": [{"name": "a", "image": "a:2", "resources": {"cpu": "3"}}]}


def test_managed_fields_rules_change_nothing():
    desired = {"spec": {"replicas": 2}}
    rules = [IgnoreRule("Deployment", managed_fields_managers=("hpa",))]
    assert keep_live_values(desired, {"spec": {"replicas": 5}}, rules) is desired
