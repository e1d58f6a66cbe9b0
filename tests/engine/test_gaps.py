"""What trying the engine from outside with Argo CD's example repositories found (issue 11, part 6),
each checked on the real control plane and with the real renderers."""
import pytest

from apps.engine.errors import RenderError
from apps.engine.resources import HOOK_LABEL
from apps.engine.source import (JsonnetSpec, JsonnetVar, RenderTools, SourceSpec, detect_tool,
                                render)
from apps.engine.source.render import parse_manifests
from apps.engine.sync import SyncOperation, SyncOptions

from tests.waiting import until

from .manifests import configmap, job


@pytest.fixture(scope="module")
def tools() -> RenderTools:
    from tests.localstack.kube import cluster_bin_dir
    bin_dir = cluster_bin_dir()
    return RenderTools(kustomize=bin_dir / "kustomize", helm=bin_dir / "helm",
                       jsonnet=bin_dir / "jsonnet")


def sync(cluster, comparator, app, manifests, **options):
    comparison = comparator.compare(app, manifests, namespace=app)
    options.setdefault("create_namespace", True)
    return SyncOperation(cluster, app, comparison, app, SyncOptions(**options)).run()


def generated_hook(prefix, policy=None):
    annotations = {"argocd.argoproj.io/hook": "PreSync"}
    if policy:
        annotations["argocd.argoproj.io/hook-delete-policy"] = policy
    hook = job("unused", annotations)
    hook["metadata"] = {"generateName": prefix, "annotations": annotations}
    return hook


def hook_names(result):
    return [r.key.name for r in result.resources if r.action == "hook"]


# --- hooks with metadata.generateName ------------------------------------------------------------
def test_generate_name_hook_renders_but_an_ordinary_object_still_needs_a_name():
    text = b"""apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations: {argocd.argoproj.io/hook: PreSync}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: busybox}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {generateName: settings-}
"""
    with pytest.raises(RenderError, match="document 2: metadata.generateName without "
                                          "metadata.name is only supported on hooks"):
        parse_manifests(text, "hooks.yaml")
    [hook] = parse_manifests(text.split(b"---")[0], "hooks.yaml")
    assert hook["metadata"] == {"generateName": "migrate-",
                                "annotations": {"argocd.argoproj.io/hook": "PreSync"}}


def test_each_run_of_a_generate_name_hook_is_a_new_object_replacing_the_last(
        cluster, comparator, app_name):
    jobs = cluster.resource_for("batch/v1", "Job")
    manifests = [generated_hook("migrate-"), configmap("settings")]  # BeforeHookCreation

    first = sync(cluster, comparator, app_name, manifests)
    assert first.phase == "Succeeded", first.message
    [first_name] = hook_names(first)
    assert first_name.startswith("migrate-") and len(first_name) > len("migrate-")
    assert cluster.get(jobs, app_name, first_name) is not None

    second = sync(cluster, comparator, app_name, manifests)
    assert second.phase == "Succeeded", second.message
    [second_name] = hook_names(second)
    assert second_name.startswith("migrate-") and second_name != first_name
    # BeforeHookCreation removed the earlier run before creating this one.
    assert cluster.get(jobs, app_name, first_name) is None
    runs, _ = cluster.list(jobs, app_name, label_selector=HOOK_LABEL)
    assert [j["metadata"]["name"] for j in runs] == [second_name]
    # A hook is no resource of the app: nothing to prune, nothing OutOfSync because of it.
    comparison = comparator.compare(app_name, manifests, namespace=app_name)
    assert [str(r.key) for r in comparison.resources] == [f"/ConfigMap:{app_name}/settings"]


def test_generate_name_hook_deleted_when_it_succeeded(cluster, comparator, app_name):
    jobs = cluster.resource_for("batch/v1", "Job")
    result = sync(cluster, comparator, app_name,
                  [generated_hook("smoke-", "HookSucceeded"), configmap("settings")])
    assert result.phase == "Succeeded", result.message
    [name] = hook_names(result)
    assert {r.key.name: r.status for r in result.resources if r.action == "hook"} == \
        {name: "Succeeded"}
    assert until(lambda: cluster.get(jobs, app_name, name), lambda live: live is None) is None


# --- Jsonnet -------------------------------------------------------------------------------------
def write(root, files: dict):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


JSONNET_REPO = {
    "lib/k.libsonnet": """{
  cm(name, data):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, data: data },
}""",
    # A function of top-level arguments returning a list, as Argo CD's examples write it.
    "app/main.jsonnet": """local k = import 'k.libsonnet';
function(replicas, env='dev') [
  k.cm('settings', { env: env, replicas: std.toString(replicas), region: std.extVar('region') }),
  k.cm('limits', { max: std.toString(replicas * 2) }),
]""",
    "app/util.libsonnet": "{ label: 'from-util' }",
    "app/sub/one.jsonnet": """local util = import '../util.libsonnet';
function(replicas, env='dev') { apiVersion: 'v1', kind: 'ConfigMap',
  metadata: { name: 'one', labels: { src: util.label } } }""",
    "app/plain.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n",
}


def test_jsonnet_directory_is_detected_and_rendered_with_arguments_and_variables(tmp_path, tools):
    root = tmp_path / "repo"
    write(root, JSONNET_REPO)
    spec = SourceSpec(path="app", jsonnet=JsonnetSpec(
        tlas=[JsonnetVar("replicas", "3", code=True), JsonnetVar("env", "prod")],
        ext_vars=[JsonnetVar("region", "eu-west")], libs=["lib"]))
    assert detect_tool(root / "app") == "jsonnet" and detect_tool(root / "lib") == "jsonnet"

    objects = render(root, spec, tools)
    by_name = {o["metadata"]["name"]: o for o in objects}
    assert [o["metadata"]["name"] for o in objects] == ["settings", "limits", "plain", "one"]
    assert by_name["settings"]["data"] == {"env": "prod", "replicas": "3", "region": "eu-west"}
    assert by_name["limits"]["data"] == {"max": "6"}
    assert by_name["one"]["metadata"]["labels"] == {"src": "from-util"}


def test_jsonnet_errors_name_the_file_inside_the_repository(tmp_path, tools):
    root = tmp_path / "repo"
    write(root, {"app/bad.jsonnet": "{ a: error 'replicas must be set' }"})
    with pytest.raises(RenderError) as caught:
        render(root, SourceSpec(path="app"), tools)
    message = str(caught.value)
    assert "jsonnet failed" in message and "replicas must be set" in message
    assert "app/bad.jsonnet" in message and str(tmp_path) not in message

    write(root, {"app/bad.jsonnet": "'just a string'"})
    with pytest.raises(RenderError, match="not a Kubernetes object"):
        render(root, SourceSpec(path="app"), tools)


SECRET = "s3cr3t-outside-the-checkout"


@pytest.mark.parametrize("files, jsonnet", [
    ({"app/a.jsonnet": "importstr '{secret}'"}, {}),
    ({"app/a.jsonnet": "importstr '../../secret.txt'"}, {}),
    ({"app/a.jsonnet": "local x = import 'ok.libsonnet'; x",
      "app/ok.libsonnet": "// harmless at first sight\n{ s: importstr @'{secret}' }"}, {}),
    ({"app/a.jsonnet": "importbin '\\u002f{secret_rest}'"}, {}),
    ({"app/a.jsonnet": "std.extVar('x')"},
     {"ext_vars": [JsonnetVar("x", "importstr '{secret}'", code=True)]}),
    ({"app/a.jsonnet": "import 'evil.libsonnet'",
      "lib/evil.libsonnet": "importstr '../../secret.txt'"}, {"libs": ["lib"]}),
], ids=["absolute", "dot-dot", "transitive", "escaped", "ext-code", "library-path"])
def test_jsonnet_cannot_read_files_outside_the_repository(tmp_path, tools, files, jsonnet):
    (tmp_path / "secret.txt").write_text(SECRET)
    secret = str(tmp_path / "secret.txt")

    def fill(text):
        return text.replace("{secret}", secret).replace("{secret_rest}", secret[1:])

    root = tmp_path / "repo"
    write(root, {rel: fill(text) for rel, text in files.items()})
    ext_vars = [JsonnetVar(v.name, fill(v.value), v.code) for v in jsonnet.get("ext_vars", [])]
    spec = SourceSpec(path="app", jsonnet=JsonnetSpec(ext_vars=ext_vars,
                                                      libs=jsonnet.get("libs", [])))
    with pytest.raises(RenderError, match="leads outside the repository") as caught:
        render(root, spec, tools)
    assert SECRET not in str(caught.value)


def test_jsonnet_library_symlinked_out_of_the_repository_is_refused(tmp_path, tools):
    outside = tmp_path / "outside"
    write(outside, {"k.libsonnet": "{}"})
    root = tmp_path / "repo"
    write(root, {"app/a.jsonnet": "import 'k.libsonnet'"})
    (root / "lib").symlink_to(outside)
    with pytest.raises(RenderError, match="leads outside the repository"):
        render(root, SourceSpec(path="app", jsonnet=JsonnetSpec(libs=["lib"])), tools)


def test_generate_name_hook_deleted_when_it_failed(cluster, comparator, app_name):
    jobs = cluster.resource_for("batch/v1", "Job")
    failing = generated_hook("check-", "HookFailed")
    # No node matches: the pod never runs and the deadline fails the Job.
    failing["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "x"}
    failing["spec"]["activeDeadlineSeconds"] = 2
    result = sync(cluster, comparator, app_name, [failing, configmap("settings")],
                  health_timeout=60)
    assert result.phase == "Failed" and "check-" in result.message
    [name] = hook_names(result)
    assert {r.key.name: r.status for r in result.resources if r.action == "hook"} == \
        {name: "Failed"}
    assert until(lambda: cluster.get(jobs, app_name, name), lambda live: live is None) is None


def test_jsonnet_imports_through_a_symlinked_folder_are_checked_too(tmp_path, tools):
    # lib -> vendor/deep/lib stays inside the repository, but what its files import must too.
    (tmp_path / "secret.txt").write_text(SECRET)
    root = tmp_path / "repo"
    write(root, {"app/a.jsonnet": "import 'k.libsonnet'",
                 "vendor/deep/lib/k.libsonnet": "importstr '../../../../secret.txt'"})
    (root / "lib").symlink_to(root / "vendor/deep/lib")
    with pytest.raises(RenderError, match="leads outside the repository") as caught:
        render(root, SourceSpec(path="app", jsonnet=JsonnetSpec(libs=["lib"])), tools)
    assert SECRET not in str(caught.value)


def test_jsonnet_import_scan_reads_code_not_strings_or_comments():
    from apps.engine.source.jsonnet_imports import imports
    source = """// import '/etc/passwd' in a comment
/* importstr '/etc/shadow' */ # import "/x"
local doc = |||
  import '/in/a/text/block'
|||;
local s = "import '/in/a/string'";
local a = import 'a.libsonnet';
local b = importstr @'b''s.txt';
local c = importbin "\\u002fc.bin";
local d = import /* between */ 'd.libsonnet';
{ doc: doc, s: s, a: a, b: b, c: c, d: d, n: 1e3 }
"""
    assert imports(source) == [("import", "a.libsonnet", 7), ("importstr", "b's.txt", 8),
                               ("importbin", "/c.bin", 9), ("import", "d.libsonnet", 10)]


def test_jsonnet_the_import_scan_cannot_read_is_refused(tmp_path, tools):
    root = tmp_path / "repo"
    write(root, {"app/a.jsonnet": "local s = 'unterminated;\nimport '/etc/hostname'"})
    with pytest.raises(RenderError, match="app/a.jsonnet:2: invalid Jsonnet"):
        render(root, SourceSpec(path="app"), tools)
