"""Identity of resources and the annotations that steer sync, in Argo CD's vocabulary.

Deploy repositories written for Argo CD work unchanged: sync waves, hooks, hook delete policies,
sync options and compare options are read from `argocd.argoproj.io/*` annotations (and Helm's
hook annotations, mapped as Argo CD maps them). Tracking uses Argo CD's value format under our
own key, so an Argo CD in the same cluster never claims our objects, nor we its.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

TRACKING_ANNOTATION = "gitops-ui.io/tracking-id"
# On each run of a hook written with metadata.generateName: which hook of which app it is, so
# BeforeHookCreation finds the earlier runs (their names were picked by the API server).
HOOK_LABEL = "gitops-ui.io/hook"
ARGO = "argocd.argoproj.io/"
HOOK_TYPES = ("PreSync", "Sync", "PostSync", "SyncFail", "Skip")
_HELM_HOOKS = {"pre-install": "PreSync", "pre-upgrade": "PreSync",
               "post-install": "PostSync", "post-upgrade": "PostSync"}
_HELM_DELETE = {"hook-succeeded": "HookSucceeded", "hook-failed": "HookFailed",
                "before-hook-creation": "BeforeHookCreation"}

# Kinds applied first (and pruned last), so what others depend on exists before them.
_KIND_ORDER = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
               "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap",
               "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
               "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
               "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
               "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
               "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass",
               "Ingress", "APIService"]
_KIND_RANK = {kind: i for i, kind in enumerate(_KIND_ORDER)}


@dataclass(frozen=True, order=True)
class ResourceKey:
    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.group}/{self.kind}:{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> "ResourceKey":
        group_kind, _, ns_name = text.partition(":")
        group, _, kind = group_kind.rpartition("/")
        namespace, _, name = ns_name.rpartition("/")
        return cls(group, kind, namespace, name)


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def key_of(obj: dict) -> ResourceKey:
    meta = obj.get("metadata") or {}
    return ResourceKey(group_of(obj.get("apiVersion", "")), obj.get("kind", ""),
                       meta.get("namespace") or "", meta.get("name") or "")


def annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


def tracking_id(app: str, obj: dict) -> str:
    return f"{app}:{key_of(obj)}"


def tracked_by(obj: dict) -> str | None:
    """The application that manages `obj`, if any.

    Controllers copy annotations to what they create (a Deployment's to its ReplicaSets), so the
    id counts only when the key in it is the object's own.
    """
    value = annotations(obj).get(TRACKING_ANNOTATION)
    if not value:
        return None
    app, _, key = value.partition(":")
    return app if key == str(key_of(obj)) else None


def with_tracking(app: str, obj: dict) -> dict:
    """A copy of `obj` carrying our tracking annotation."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), TRACKING_ANNOTATION: tracking_id(app, obj)}
    return out


def hook_label_value(app: str, obj: dict) -> str:
    """HOOK_LABEL's value for a generateName hook: a digest, as a label value is at most 63
    characters of [A-Za-z0-9-_.]."""
    meta = obj.get("metadata") or {}
    key = key_of(obj)
    ident = f"{app}:{key.group}/{key.kind}:{key.namespace}/{meta.get('generateName', '')}"
    return hashlib.sha1(ident.encode()).hexdigest()


def defined_kinds(objs) -> dict[tuple[str, str], str]:
    """(group, kind) -> scope ("Namespaced" or "Cluster") of each CustomResourceDefinition
    among `objs`: kinds a sync may create before the cluster serves them."""
    found = {}
    for obj in objs:
        spec = obj.get("spec")
        if obj.get("kind") == "CustomResourceDefinition" and isinstance(spec, dict) \
                and "group" in spec and "kind" in (spec.get("names") or {}):
            found[(spec["group"], spec["names"]["kind"])] = spec.get("scope", "Namespaced")
    return found


def sync_wave(obj: dict) -> int:
    ann = annotations(obj)
    value = ann.get(ARGO + "sync-wave")
    if value is None and "helm.sh/hook" in ann:
        value = ann.get("helm.sh/hook-weight")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def hook_types(obj: dict) -> list[str]:
    """The hook phases of `obj` (empty: an ordinary resource)."""
    ann = annotations(obj)
    if ARGO + "hook" in ann:
        return [h.strip() for h in ann[ARGO + "hook"].split(",") if h.strip() in HOOK_TYPES]
    if "helm.sh/hook" in ann:
        return sorted({_HELM_HOOKS[h.strip()] for h in ann["helm.sh/hook"].split(",")
                       if h.strip() in _HELM_HOOKS})
    return []


def hook_delete_policies(obj: dict) -> set[str]:
    ann = annotations(obj)
    if ARGO + "hook-delete-policy" in ann:
        return {p.strip() for p in ann[ARGO + "hook-delete-policy"].split(",") if p.strip()}
    if "helm.sh/hook-delete-policy" in ann:
        return {_HELM_DELETE[p.strip()] for p in ann["helm.sh/hook-delete-policy"].split(",")
                if p.strip() in _HELM_DELETE}
    return {"BeforeHookCreation"}  # Argo CD's default: replace the previous run's hook


def _options(obj: dict, key: str) -> set[str]:
    return {o.strip() for o in annotations(obj).get(ARGO + key, "").split(",") if o.strip()}


def sync_options(obj: dict) -> set[str]:
    """E.g. {"Prune=false", "Replace=true"} from argocd.argoproj.io/sync-options."""
    return _options(obj, "sync-options")


def compare_options(obj: dict) -> set[str]:
    return _options(obj, "compare-options")


def kind_rank(kind: str) -> int:
    return _KIND_RANK.get(kind, len(_KIND_ORDER))


def apply_order(obj: dict) -> tuple:
    """Sort key inside one phase: wave, then kind dependency order, then name."""
    key = key_of(obj)
    return (sync_wave(obj), kind_rank(key.kind), key.namespace, key.name)
