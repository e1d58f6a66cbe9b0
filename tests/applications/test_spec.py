"""Application fields are checked at create/update against what the engine accepts (REST API,
admin, services), on PostgreSQL; Argo CD-shaped Helm parameters render with the real helm."""
import uuid

import pytest

from apps.applications import rendering, services
from apps.applications.models import Application
from apps.applications.spec import InvalidSpec
from apps.repositories.models import Repository
from tests.gitcli import git

from .factories import REPO_URL

pytestmark = pytest.mark.django_db


def app_body(**fields):
    body = {"name": "cart", "project": "default", "repository": REPO_URL, "revision": "main",
            "path": "apps/cart", "cluster": "prod", "namespace": "cart"}
    return body | fields


def create(admin_client, **fields):
    return admin_client.post("/api/applications/", app_body(**fields),
                             content_type="application/json")


# --- Helm parameters ---------------------------------------------------------------------------
CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "chart/values.yaml": "replicas: 1\nimage: {repository: nginx, tag: '1.0'}\ngreeting: hi\n",
    "chart/templates/web.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-web
data:
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  tagKind: {{ kindOf .Values.image.tag | quote }}
  replicas: {{ .Values.replicas | quote }}
  replicasKind: {{ kindOf .Values.replicas | quote }}
  greeting: {{ .Values.greeting | quote }}
""",
}


@pytest.fixture
def chart_repo(git_server, tmp_path, world):
    name = f"spec-{uuid.uuid4().hex[:8]}"
    url = git_server.create_repo(name)
    for path, text in CHART.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    git("init", "--quiet", "--initial-branch=main", tmp_path)
    git("add", "-A", cwd=tmp_path)
    git("commit", "--quiet", "-m", "chart", cwd=tmp_path)
    git("push", "--quiet", git_server.auth_url(name), "main", cwd=tmp_path)
    return Repository.objects.create(url=url, username=git_server.username,
                                     password=git_server.password)


def test_argo_cd_shaped_helm_parameters_are_accepted_and_render_with_helm(admin_client, chart_repo):
    parameters = [{"name": "image.tag", "value": "1.20", "forceString": True},
                  {"name": "replicas", "value": "3"},
                  {"name": "greeting", "value": "hello, world"}]
    response = create(admin_client, repository=chart_repo.url, path="chart", tool="helm",
                      source={"helm": {"release_name": "shop", "parameters": parameters}})
    assert response.status_code == 201, response.content
    # Stored in the shape the engine's HelmSpec takes; forceString ones apart (--set-string).
    assert response.json()["source"]["helm"] == {
        "release_name": "shop", "parameters": {"replicas": "3", "greeting": "hello, world"},
        "string_parameters": {"image.tag": "1.20"}}

    desired = rendering.desired_state(Application.objects.get(name="cart"))
    [configmap] = desired.manifests
    assert configmap["metadata"]["name"] == "shop-web"
    assert configmap["data"] == {"image": "nginx:1.20", "tagKind": "string",  # not the float 1.2
                                 "replicas": "3", "replicasKind": "int64",
                                 "greeting": "hello, world"}


@pytest.mark.parametrize("parameters,message", [
    ("image.tag=1.2", "source.helm.parameters: must be"),
    (["image.tag=1.2"], "source.helm.parameters[0]: must be an object"),
    ([{"value": "1.2"}], "source.helm.parameters[0].name: is required"),
    ([{"name": "a", "val": "1"}], "unknown key(s) val; valid: name, value, forceString"),
    ([{"name": "a", "value": "1", "forceString": "yes"}], "forceString: must be true or false"),
    ([{"name": "a", "value": {"b": 1}}], "must be a string, number or boolean"),
    ({"image": {"tag": "1.2"}}, "source.helm.parameters.image: must be a string"),
    ([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}], "'a' is given twice"),
])
def test_other_helm_parameter_shapes_are_refused(admin_client, world, parameters, message):
    response = create(admin_client, source={"helm": {"parameters": parameters}})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"source"}
    assert message in response.json()["detail"]
    assert not Application.objects.filter(name="cart").exists()


# --- path, sync options, ignore_differences, source keys, tool ---------------------------------
@pytest.mark.parametrize("path,message", [
    ("../other-team", "leads outside the repository"),
    ("apps/../../etc", "leads outside the repository"),
    ("/etc/kubernetes", "must be relative"),
    ("apps/\u0000cart", "nul"),  # DRF's own check comes first ("Null characters ...")
])
def test_a_path_leaving_the_repository_is_refused(admin_client, world, path, message):
    response = create(admin_client, path=path)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"path"}
    assert message in response.json()["detail"].lower()


def test_a_path_inside_the_repository_is_stored_normalised(admin_client, world):
    assert create(admin_client, path="apps/../apps/cart/").json()["path"] == "apps/cart"


def test_unknown_sync_options_are_refused_with_the_valid_ones(admin_client, world):
    response = create(admin_client, sync_options=["CreateNamespace=true", "ServerSideApply=true"])
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "unknown option(s) ServerSideApply=true" in detail
    for valid in ("CreateNamespace=true", "ApplyOutOfSyncOnly=true", "PruneLast=true",
                  "Replace=true"):
        assert valid in detail
    accepted = create(admin_client, sync_options=["CreateNamespace=true", "PruneLast=false"])
    assert accepted.status_code == 201


@pytest.mark.parametrize("rules,message", [
    ([{"kind": "Deployment", "jsonPaths": [".spec"]}], "unknown key(s) jsonPaths"),
    ([{"kind": "Deployment", "jsonPointers": ["spec/replicas"]}], "starts with /"),
    ([{"kind": "Deployment", "jsonPointers": "/spec/replicas"}], "must be a list of strings"),
    ([{"group": "apps", "jsonPointers": ["/spec/replicas"]}], "kind: is required"),
    ([{"kind": "Deployment"}], "needs at least one of jsonPointers"),
    ([{"kind": "Deployment", "jqPathExpressions": [".spec.template.spec.containers[] | select("]}],
     "ignore_differences[0].jqPathExpressions: invalid jq expression "
     "'.spec.template.spec.containers[] | select(': syntax error, unexpected end of file"),
    # Text that would close the del( ) wrapper the expression runs in is refused too.
    ([{"kind": "Deployment", "jqPathExpressions": [".a) | (.b"]}],
     "invalid jq expression '.a) | (.b'"),
    ([{"kind": "Deployment", "jqPathExpressions": [" "]}], "invalid jq expression ' ': is empty"),
    # jq runs without a time limit here: what may never end or reads outside the object is refused.
    ([{"kind": "Deployment", "jqPathExpressions": [".spec | repeat(.)"]}],
     "repeat is not allowed in an ignore expression"),
    ([{"kind": "Deployment", "jqPathExpressions": ['.spec | select($ENV.SECRET_KEY == "x")']}],
     "$ENV is not allowed"),
    ([{"kind": "Deployment", "managedFieldsManagers": "kube-controller-manager"}],
     "managedFieldsManagers: must be a list of strings"),
    ([{"kind": "Deployment", "managedFieldsManagers": [""]}], "a manager name cannot be empty"),
])
def test_malformed_ignore_differences_are_refused(admin_client, world, rules, message):
    response = create(admin_client, ignore_differences=rules)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"ignore_differences"}
    assert message in response.json()["detail"]


def test_ignore_differences_in_argo_cds_three_spellings_are_accepted(admin_client, world):
    rules = [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
             {"group": "apps", "kind": "Deployment", "jqPathExpressions": [
                 '.spec.template.spec.initContainers[] | select(.name == "injected")']},
             {"group": "apps", "kind": "Deployment",
              "managedFieldsManagers": ["kube-controller-manager"]}]
    response = create(admin_client, ignore_differences=rules)
    assert response.status_code == 201, response.json()
    app = Application.objects.get(name="cart")
    assert app.ignore_differences == rules
    engine_rules = rendering.ignore_rules(app)
    assert engine_rules[1].jq_path_expressions == (rules[1]["jqPathExpressions"][0],)
    assert engine_rules[2].managed_fields_managers == ("kube-controller-manager",)


@pytest.mark.parametrize("source,message", [
    ({"directory": {"recurse": True}}, "source: unknown key(s) directory"),
    ({"helm": {"valueFiles": ["prod.yaml"]}}, "source.helm: unknown key(s) valueFiles"),
    ({"helm": {"values": "a: [1"}}, "source.helm.values: invalid YAML"),
    ({"helm": {"values": "- a\n- b\n"}}, "must be a YAML mapping"),
    ({"kustomize": {"images": "nginx:1.29"}}, "source.kustomize.images: must be a list"),
    ({"recurse": "yes"}, "source.recurse: must be true or false"),
])
def test_unknown_or_malformed_source_keys_are_refused(admin_client, world, source, message):
    response = create(admin_client, source=source)
    assert response.status_code == 400 and message in response.json()["detail"]


def test_an_unknown_tool_is_refused_with_the_valid_ones(admin_client, world):
    response = create(admin_client, tool="ksonnet")
    assert response.status_code == 400
    assert "'ksonnet' is not a tool; valid: directory, kustomize, helm, jsonnet" in \
        response.json()["detail"]


def test_an_update_is_checked_too_and_leaves_the_app_unchanged(admin_client, world):
    response = admin_client.patch("/api/applications/shop", {"path": "../../secrets"},
                                  content_type="application/json")
    assert response.status_code == 400 and "outside the repository" in response.json()["detail"]
    assert Application.objects.get(name="shop").path == "."


def test_services_check_the_fields_for_every_caller(world):
    """Management commands, the bench and the admin's actions create through services."""
    with pytest.raises(InvalidSpec, match=r"^source\.helm\.parameters"):
        services.create_application(name="cart", project=world.project, repository=world.repo,
                                    cluster=world.cluster, namespace="cart",
                                    source={"helm": {"parameters": "image.tag=1"}})
    with pytest.raises(InvalidSpec, match=r"^sync_options"):
        services.update_application(world.app, sync_options=["Validate=false"])
    assert Application.objects.get(name="shop").sync_options == []


def test_the_admin_form_refuses_what_the_engine_cannot_use(admin_client, world):
    response = admin_client.post("/admin/applications/application/add/", {
        "name": "cart", "project": world.project.pk, "repository": world.repo.pk,
        "revision": "HEAD", "path": "../x", "tool": "",
        "source": '{"helm": {"parameters": [{"name": "a", "val": "1"}]}}',
        "cluster": world.cluster.pk, "namespace": "cart", "sync_options": '["Validate=false"]',
        "ignore_differences": "[]", "retry_limit": 2})
    assert response.status_code == 200  # the form again, with the errors
    for message in (b"leads outside the repository", b"unknown key(s) val",
                    b"unknown option(s) Validate=false"):
        assert message in response.content
    assert not Application.objects.filter(name="cart").exists()
