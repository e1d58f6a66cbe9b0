"""The kaniko backend: the image is built in a cluster, by a Job running the executor of
kaniko's maintained fork (upstream was archived in 2025), instead of by buildah on the worker.

For one build, in the rule's build cluster and namespace:
1. a `kubernetes.io/dockerconfigjson` Secret with the target registry's credentials, mounted
   at /kaniko/.docker/config.json, and, when the repository has credentials, an Opaque Secret
   with GIT_USERNAME / GIT_PASSWORD: the executor clones the tagged commit itself;
2. a batch/v1 Job (no retry, a deadline, removed later by the TTL controller) whose container
   writes the image digest to its termination message;
3. a watch on the Job and its pod until the Job is Complete or Failed; pod phases, container
   states (ErrImagePull, ...) and the pod's log go to the build log.
Credentials travel in the Secrets only, never in the Job's args or env values, and the Secrets
are deleted at the end whatever happened (they are also owned by the Job, so the garbage
collector takes them if this process dies first). A cancel deletes the Job.
"""
from __future__ import annotations

import base64
import json
import posixpath
import queue
import threading
import time
from urllib.parse import urlsplit

from django.conf import settings

from apps.clusters import services as clusters
from apps.engine.errors import ClusterError, ResourceError
from apps.engine.images import InvalidImageReference, parse as parse_image
from apps.registries.oci import DIGEST

from . import jobwatch, services
from .buildah import BuildCanceled, RegistryAccess
from .buildlog import BuildLog
from .models import Build, TagRule
from .pipeline import StepFailed, read_back
from .tagrules import RuleInvalid, check_relative_path

POLL = 0.5  # seconds between two looks at "was this build canceled?"
CONTAINER = "kaniko"
BUILD_LABEL = "gitops-ui.io/build"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gitops-ui", "app.kubernetes.io/component": "build"}
DOCKER_DIR = "/kaniko/.docker"
CA_DIR = "/kaniko/registry-ca"
JOB_TTL = 3600  # seconds a finished Job (and its pod's log) stays for a look
GRACE = 300  # seconds past the Job's activeDeadlineSeconds before we stop waiting for it


# --- the rule ------------------------------------------------------------------------------------
def check_backend(rule: TagRule) -> None:
    """RuleInvalid naming the field of a kaniko rule that cannot be used."""
    if rule.backend != TagRule.Backend.KANIKO:
        return
    if rule.build_cluster_id is None:
        raise RuleInvalid("build_cluster", "a kaniko build runs as a Job in a cluster: "
                                           "choose the cluster")
    if not rule.build_namespace:
        raise RuleInvalid("build_namespace", "a kaniko build needs the namespace its Job runs in")
    if rule.project_id is not None:
        from apps.applications.services import NotPermitted, check_destination

        try:
            check_destination(rule.project, rule.build_cluster.name, rule.build_namespace)
        except NotPermitted as exc:
            raise RuleInvalid("build_cluster", f"{exc}: a kaniko build runs only where its "
                                               "project may deploy") from None
    try:
        parse_image((rule.executor_image or "").strip())
    except InvalidImageReference as exc:
        raise RuleInvalid("executor_image", f"not an image reference: {exc}") from None
    if rule.repository_id is not None:
        try:
            git_context(rule.repository.url, "", "0" * 40)
        except StepFailed as exc:
            raise RuleInvalid("backend", str(exc)) from None
    placement(rule)


TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


def placement(rule: TagRule) -> dict:
    """The build pod's nodeSelector and tolerations, checked (RuleInvalid names the field)."""
    from apps.applications.labels import InvalidLabel, check_key, check_value, clean

    spec: dict = {}
    try:
        if rule.build_node_selector:
            spec["nodeSelector"] = clean(rule.build_node_selector)
    except InvalidLabel as exc:
        raise RuleInvalid("build_node_selector", str(exc)) from None
    if not isinstance(rule.build_tolerations, list):
        raise RuleInvalid("build_tolerations", "a list of tolerations")
    tolerations = []
    for i, item in enumerate(rule.build_tolerations):
        where = f"toleration {i + 1}"
        if not isinstance(item, dict) or set(item) - {"key", "operator", "value", "effect"}:
            raise RuleInvalid("build_tolerations", f"{where}: an object of key, operator, "
                                                   "value and effect")
        operator, effect = item.get("operator", "Equal"), item.get("effect", "")
        key, value = item.get("key", ""), item.get("value", "")
        if operator not in TOLERATION_OPERATORS or effect not in TOLERATION_EFFECTS:
            raise RuleInvalid("build_tolerations", f"{where}: operator is Equal or Exists, "
                                                   "effect NoSchedule, PreferNoSchedule or "
                                                   "NoExecute")
        try:
            if key or operator == "Equal":
                check_key(key)
            check_value(key, value)
        except InvalidLabel as exc:
            raise RuleInvalid("build_tolerations", f"{where}: {exc}") from None
        if operator == "Exists" and value:
            raise RuleInvalid("build_tolerations", f"{where}: Exists takes no value")
        tolerations.append({k: v for k, v in (("key", key), ("operator", operator),
                                              ("value", value), ("effect", effect)) if v})
    if tolerations:
        spec["tolerations"] = tolerations
    return spec


# --- what goes to the cluster --------------------------------------------------------------------
def git_context(url: str, tag: str, sha: str) -> tuple[str, str]:
    """kaniko's git context for `sha` (tagged `tag`) of the repository at `url`, and the pull
    method (http or https) kaniko reads from GIT_PULL_METHOD. Only host, port and path of the
    URL are kept: `#` separates the reference and the commit in kaniko's syntax."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StepFailed("kaniko clones the commit over http(s): a repository with an SSH URL "
                         "builds with buildah")
    if parts.username or parts.password or parts.query or parts.fragment or "#" in parts.path:
        raise StepFailed("the repository URL has parts kaniko's git context cannot carry")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    ref = f"#refs/tags/{tag}" if tag and "#" not in tag else ""
    return f"git://{host}{parts.path}{ref}#{sha}", parts.scheme


def names(build: Build) -> dict:
    base = f"gitops-ui-build-{build.pk}"
    return {"job": base, "registry": f"{base}-registry", "git": f"{base}-git"}


def executor_args(build: Build, rule: TagRule, context: str) -> list[str]:
    sub = check_relative_path("context", rule.context, allow_dot=True)
    dockerfile = check_relative_path("dockerfile", rule.dockerfile, allow_dot=False)
    # kaniko reads --dockerfile relative to the context folder; the rule's is relative to the
    # repository's root.
    args = [f"--context={context}", f"--dockerfile={posixpath.relpath(dockerfile, sub)}",
            f"--destination={build.image}", "--digest-file=/dev/termination-log"]
    if sub != ".":
        args.append(f"--context-sub-path={sub}")
    if build.action != TagRule.Action.PUSH:
        args.append("--no-push")  # a build rule checks the image builds; push puts it out
    for name, value in sorted(rule.build_args.items()):
        args.append(f"--build-arg={name}={value}")
    if rule.platform:
        args.append(f"--custom-platform={rule.platform}")
    registry = rule.registry
    if urlsplit(registry.url).scheme == "http":
        args += ["--insecure", f"--insecure-registry={registry.host}"]
    elif not registry.verify_tls:
        args += ["--skip-tls-verify", f"--skip-tls-verify-registry={registry.host}"]
    elif registry.ca_data:
        args.append(f"--registry-certificate={registry.host}={CA_DIR}/ca.crt")
    return args


def manifests(build: Build, rule: TagRule) -> tuple[list[dict], dict]:
    """The Secrets and the Job of `build`."""
    repo, registry, ns = build.repository, rule.registry, rule.build_namespace
    named = names(build)
    labels = {**MANAGED_BY, BUILD_LABEL: str(build.pk)}
    context, pull_method = git_context(repo.url, build.tag, build.sha)
    access = RegistryAccess.of(registry)
    auths = {access.host: {"auth": _docker_auth(access)}} if access.username else {}
    registry_data = {".dockerconfigjson": json.dumps({"auths": auths})}
    if registry.ca_data and access.tls_verify:
        registry_data["ca.crt"] = registry.ca_data
    secrets = [_secret(named["registry"], ns, labels, "kubernetes.io/dockerconfigjson",
                       registry_data)]
    env = [{"name": "GIT_PULL_METHOD", "value": pull_method}]
    if repo.username or repo.password:
        secrets.append(_secret(named["git"], ns, labels, "Opaque",
                               {"GIT_USERNAME": repo.username, "GIT_PASSWORD": repo.password}))
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": named["git"], "key": key}}}
                for key in ("GIT_USERNAME", "GIT_PASSWORD")]
    volumes = [{"name": "docker-config", "secret": {
        "secretName": named["registry"],
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}]
    mounts = [{"name": "docker-config", "mountPath": DOCKER_DIR, "readOnly": True}]
    if "ca.crt" in registry_data:
        volumes.append({"name": "registry-ca", "secret": {
            "secretName": named["registry"], "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
        mounts.append({"name": "registry-ca", "mountPath": CA_DIR, "readOnly": True})
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": named["job"], "namespace": ns, "labels": labels, "annotations": {
            "gitops-ui.io/image": build.image, "gitops-ui.io/commit": build.sha,
            "gitops-ui.io/tag": build.tag[:200]}},
        "spec": {
            "backoffLimit": 0, "ttlSecondsAfterFinished": JOB_TTL,
            "activeDeadlineSeconds": int(settings.GITOPS_UI_BUILD_TIMEOUT),
            "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "containers": [{
                    "name": CONTAINER, "image": rule.executor_image.strip(),
                    "args": executor_args(build, rule, context), "env": env,
                    "volumeMounts": mounts,
                    # The digest on success; the log's tail when kaniko fails.
                    "terminationMessagePolicy": "FallbackToLogsOnError"}],
                "volumes": volumes, **placement(rule)}}}}
    return secrets, job


def _docker_auth(access: RegistryAccess) -> str:
    if not access.username:
        return ""
    return base64.b64encode(f"{access.username}:{access.password}".encode()).decode()


def _secret(name: str, ns: str, labels: dict, kind: str, data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


# --- one build -----------------------------------------------------------------------------------
def build_in_cluster(build: Build, rule: TagRule, out: BuildLog) -> dict:
    """The pipeline's backend for kaniko rules: the Build fields to store (digest and size for
    a push); StepFailed, or BuildCanceled after a cancel."""
    cluster, ns = rule.build_cluster, rule.build_namespace
    if cluster is None:
        raise StepFailed("the tag rule's build cluster was deleted")
    try:
        secrets, job = manifests(build, rule)
    except RuleInvalid as exc:
        raise StepFailed(f"tag rule: {exc}") from None
    where = f"cluster {cluster.name}, namespace {ns}"
    # The log masks the passwords already; the docker config's encoded user:password too.
    out.secrets = sorted({*out.secrets, _docker_auth(RegistryAccess.of(rule.registry))} - {""},
                         key=len, reverse=True)
    try:
        engine = clusters.connect(cluster)
    except ClusterError as exc:
        raise StepFailed(f"build cluster {cluster.name} cannot be used: {exc}") from None
    created: list[str] = []
    with engine:
        try:
            for secret in secrets:
                _create(engine, where, f"/api/v1/namespaces/{ns}/secrets", secret)
                created.append(secret["metadata"]["name"])
            live = _create(engine, where, f"/apis/batch/v1/namespaces/{ns}/jobs", job)
            executor = job["spec"]["template"]["spec"]["containers"][0]
            out.write(f"kaniko Job {ns}/{job['metadata']['name']} created in cluster "
                      f"{cluster.name} ({executor['image']})")
            out.write("$ executor " + " ".join(executor["args"]))
            _own_secrets(engine, ns, created, live, out)
            out.flush()
            pod = _follow(engine, build, ns, job["metadata"]["name"], where, out)
        finally:
            for name in created:  # the credentials leave the cluster whatever happened
                try:
                    engine.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/{name}",
                                   what=f"delete Secret {name}")
                except (ClusterError, ResourceError) as exc:
                    if getattr(exc, "status", None) != 404:
                        out.write(f"note: Secret {ns}/{name} not deleted ({exc}); it goes with "
                                  "the Job")
    reported = (jobwatch.terminated(pod, CONTAINER).get("message") or "").strip()
    if reported and not DIGEST.match(reported):
        out.write("note: the executor's termination message is no digest")
        reported = ""
    if build.action != TagRule.Action.PUSH:
        if not reported:
            raise StepFailed("the kaniko Job completed but reported no image digest: nothing "
                             "shows that an image was built")
        out.write(f"built {reported} (a build rule: not pushed)")
        return {}
    missing = (f"the kaniko Job completed, but registry {rule.registry.name} has no image "
               f"{build.image}" + ("" if reported else " (and kaniko reported no digest): "
                                   "nothing was pushed"))
    return read_back(rule.registry, build.image, reported, "kaniko", out, missing=missing)


def _create(engine, where: str, path: str, obj: dict) -> dict:
    try:
        return engine.request_json("POST", path, body=obj,
                                   what=f"create {obj['kind']} {obj['metadata']['name']}")
    except ClusterError as exc:
        raise StepFailed(f"the build cluster cannot be used ({where}): {exc}") from None
    except ResourceError as exc:
        raise StepFailed(f"{where}: {exc}") from None


def _own_secrets(engine, ns: str, names_: list[str], job: dict, out: BuildLog) -> None:
    """The Job owns the Secrets: should this process die before deleting them, the garbage
    collector does when the Job goes (its TTL, or a cancel)."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
             "uid": job["metadata"]["uid"]}
    for name in names_:
        try:
            engine.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/{name}",
                           body={"metadata": {"ownerReferences": [owner]}},
                           content_type="application/merge-patch+json", what=f"own {name}")
        except (ClusterError, ResourceError) as exc:  # deleted at the end all the same
            out.write(f"note: Secret {ns}/{name} not tied to the Job: {exc}")


# --- following the Job ---------------------------------------------------------------------------
def _follow(engine, build: Build, ns: str, job_name: str, where: str, out: BuildLog) -> dict:
    """Wait for the Job to be Complete (its pod, as last read, is returned) or Failed
    (StepFailed); delete it on a cancel (BuildCanceled) or when it outlives its deadline."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    selector = f"{BUILD_LABEL}={build.pk}"
    followers = [
        jobwatch.Watch(engine, f"/apis/batch/v1/namespaces/{ns}/jobs",
                       {"fieldSelector": f"metadata.name={job_name}"}, "job", events, stop),
        jobwatch.Watch(engine, f"/api/v1/namespaces/{ns}/pods", {"labelSelector": selector},
                       "pod", events, stop)]
    for follower in followers:
        follower.start()
    timeout = settings.GITOPS_UI_BUILD_TIMEOUT + GRACE
    pods = jobwatch.PodReport(engine, ns, CONTAINER, out.write, stop, timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                kind, change, obj = events.get(timeout=POLL)
            except queue.Empty:
                kind = change = obj = None
            out.flush_if_due()
            if services.cancel_requested(build.pk):
                _delete_job(engine, ns, job_name, out)
                raise BuildCanceled(f"canceled: Job {ns}/{job_name} deleted ({where})")
            if time.monotonic() > deadline:
                _delete_job(engine, ns, job_name, out)
                raise StepFailed(f"the kaniko Job did not finish in "
                                 f"{settings.GITOPS_UI_BUILD_TIMEOUT:g} s ({where})")
            if kind == "error":
                raise StepFailed(f"lost the build cluster while following the Job ({where}): "
                                 f"{obj}")
            if kind == "pod" and change != "DELETED":
                pods.seen(obj)
            elif kind == "job" and change == "DELETED":
                raise StepFailed(f"the Job {ns}/{job_name} was deleted by someone else ({where})")
            elif kind == "job":
                ended = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []
                         if c.get("status") == "True" and c["type"] in ("Complete", "Failed")}
                if ended:
                    pod = pods.final(selector)
                    if "Complete" in ended:
                        out.write(f"Job {ns}/{job_name} complete")
                        return pod
                    raise StepFailed(_failure(ended["Failed"], pod))
    finally:
        stop.set()
        for follower in followers:
            follower.close()
        pods.close()


def _failure(condition: dict, pod: dict | None) -> str:
    why = ": ".join(part for part in (condition.get("reason"), condition.get("message")) if part)
    state = jobwatch.terminated(pod, CONTAINER)
    if state.get("exitCode") is not None:
        why += f"; kaniko exited with {state['exitCode']} ({state.get('reason', '')})"
    return f"the kaniko Job failed: {why or 'no reason given'}"


def _delete_job(engine, ns: str, name: str, out: BuildLog) -> None:
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    try:
        engine.request("DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs/{name}", body=body,
                       what=f"delete Job {name}")
        out.write(f"Job {ns}/{name} deleted")
    except (ClusterError, ResourceError) as exc:
        out.write(f"note: Job {ns}/{name} not deleted: {exc}")
