"""What an application's fields may hold: the shapes the engine renders and syncs with.

Checked when an application is created or changed (REST API, admin, services), so a value the
engine cannot use is refused with a message naming the field, instead of being saved and then
failing every refresh. `clean(fields)` also brings accepted spellings to the one the engine takes
(rendering.source_spec reads the result):

| field | accepted |
|---|---|
| path | relative, inside the repository ("a/../b" is stored as "b") |
| chart | "" (Git) or a chart of the Helm/OCI repository (see check_chart_source) |
| tool | "" (detect), directory, kustomize, helm, jsonnet |
| sync_options | CreateNamespace, ApplyOutOfSyncOnly, PruneLast, Replace, RespectIgnoreDifferences, each =true or =false |
| ignore_differences | [{kind, group?, name?, namespace?, and at least one of jsonPointers: ["/..."], jqPathExpressions: [".spec..."] (must compile), managedFieldsManagers: ["manager"]}] |
| source | include, exclude (globs), recurse; helm {release_name, values_files, values, parameters}; kustomize {name_prefix, name_suffix, namespace, images}; jsonnet {tlas, extVars, libs} |

Helm `parameters` come as {"image.tag": "1.2"} or in Argo CD's list shape
[{"name": "image.tag", "value": "1.2", "forceString": true}]; they are stored as the dict the
engine's HelmSpec takes, forceString ones under helm.string_parameters (helm --set-string).
Jsonnet settings are Argo CD's directory.jsonnet: tlas and extVars as [{"name", "value",
"code"}], libs as folders relative to the repository root; extVars is stored as ext_vars.
"""
from __future__ import annotations

import posixpath
import re

import yaml

from apps.engine.ignore import jq_error
from apps.engine.source import semver
from apps.engine.source.chart import CHART_NAME

TOOLS = ("directory", "kustomize", "helm", "jsonnet")
# The application-level options operations.py hands to the engine; =false is the default,
# accepted so Argo CD manifests that spell it out work unchanged.
SYNC_OPTIONS = ("CreateNamespace", "ApplyOutOfSyncOnly", "PruneLast", "Replace",
                "RespectIgnoreDifferences")
IGNORE_KEYS = ("group", "kind", "name", "namespace", "jsonPointers", "jqPathExpressions",
               "managedFieldsManagers")
SOURCE_KEYS = ("include", "exclude", "recurse", "helm", "kustomize", "jsonnet")
HELM_KEYS = ("release_name", "values_files", "values", "parameters", "string_parameters")
KUSTOMIZE_KEYS = ("name_prefix", "name_suffix", "namespace", "images")
JSONNET_KEYS = ("tlas", "extVars", "ext_vars", "libs")
JSONNET_VAR_KEYS = ("name", "value", "code")
JSONNET_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARGO_PARAMETER_KEYS = ("name", "value", "forceString")
RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class InvalidSpec(ValueError):
    """A field holds something the engine cannot use; `field` names it ("source.helm.values")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message

    @property
    def top_field(self) -> str:
        return self.field.split(".", 1)[0].split("[", 1)[0]


def clean(fields: dict) -> dict:
    """`fields` with every field this module knows checked and normalised; others untouched."""
    return {name: CLEANERS[name](value) if name in CLEANERS else value
            for name, value in fields.items()}


def clean_path(value) -> str:
    if not isinstance(value, str):
        raise InvalidSpec("path", "must be a string")
    if "\0" in value:
        raise InvalidSpec("path", "must not contain a NUL character")
    if value.startswith("/"):
        raise InvalidSpec("path", "must be relative to the repository root (no leading /)")
    normal = posixpath.normpath(value or ".")
    if normal == ".." or normal.startswith("../"):
        raise InvalidSpec("path", "leads outside the repository")
    return normal


def clean_chart(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 200 or not CHART_NAME.match(value):
        raise InvalidSpec("chart", "a chart name: letters, digits, '.', '_' and '-' (e.g. "
                                   "nginx); the repository's URL says where it is")
    return value


def check_chart_source(chart: str, revision: str, repository_url: str, tool: str = "") -> None:
    """The fields that must agree when a chart is the source (or when it is not)."""
    oci = repository_url.startswith("oci://")
    if not chart:
        if oci:
            raise InvalidSpec("chart", "an oci:// repository holds charts: name the chart")
        return
    if tool not in ("", "helm"):
        raise InvalidSpec("tool", "a chart is rendered with helm: leave it empty or helm")
    if (revision or "").strip() not in ("", "HEAD"):
        try:
            semver.check_range(revision.strip())
        except semver.InvalidVersion:
            raise InvalidSpec("revision", f"{revision!r} is not a chart version or version "
                                          "range (e.g. 1.2.3, 1.2.*, >=1.0.0 <2.0.0)") from None


def clean_tool(value) -> str:
    if value in (None, ""):
        return ""
    if value not in TOOLS:
        raise InvalidSpec("tool", f"{value!r} is not a tool; valid: {', '.join(TOOLS)} "
                                  "(or empty to detect)")
    return value


def clean_sync_options(value) -> list[str]:
    valid = [f"{name}={flag}" for name in SYNC_OPTIONS for flag in ("true", "false")]
    options = _list_of_strings(value, "sync_options")
    unknown = [o for o in options if o not in valid]
    if unknown:
        raise InvalidSpec("sync_options", f"unknown option(s) {', '.join(unknown)}; valid: "
                                          f"{', '.join(valid)}")
    return options


def clean_ignore_differences(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec("ignore_differences", "must be a list of objects")
    rules = []
    for index, rule in enumerate(value):
        where = f"ignore_differences[{index}]"
        if not isinstance(rule, dict):
            raise InvalidSpec(where, 'must be an object like {"kind": "Deployment", '
                                     '"jsonPointers": ["/spec/replicas"]}')
        _known_keys(rule, IGNORE_KEYS, where)
        for key in ("group", "kind", "name", "namespace"):
            if not isinstance(rule.get(key, ""), str):
                raise InvalidSpec(f"{where}.{key}", "must be a string")
        if not rule.get("kind"):
            raise InvalidSpec(f"{where}.kind", "is required (the kind of resource it applies to)")
        pointers = _list_of_strings(rule.get("jsonPointers"), f"{where}.jsonPointers")
        expressions = _list_of_strings(rule.get("jqPathExpressions"), f"{where}.jqPathExpressions")
        managers = _list_of_strings(rule.get("managedFieldsManagers"),
                                    f"{where}.managedFieldsManagers")
        if not (pointers or expressions or managers):
            raise InvalidSpec(where, "needs at least one of jsonPointers (e.g. /spec/replicas), "
                                     "jqPathExpressions or managedFieldsManagers")
        wrong = [p for p in pointers if not p.startswith("/")]
        if wrong:
            raise InvalidSpec(f"{where}.jsonPointers",
                              f"a JSON pointer starts with /: {wrong[0]!r}")
        for expression in expressions:
            why = jq_error(expression)
            if why:
                raise InvalidSpec(f"{where}.jqPathExpressions",
                                  f"invalid jq expression {expression!r}: {why}")
        if any(not m.strip() for m in managers):
            raise InvalidSpec(f"{where}.managedFieldsManagers", "a manager name cannot be empty")
        rules.append(dict(rule))
    return rules


def clean_source(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSpec("source", "must be an object")
    _known_keys(value, SOURCE_KEYS, "source")
    source = dict(value)
    for key in ("include", "exclude"):
        if source.get(key) is not None and not isinstance(source[key], str):
            raise InvalidSpec(f"source.{key}", 'must be a glob string, e.g. "*.yaml" or "{a,b}/*"')
    if "recurse" in source and not isinstance(source["recurse"], bool):
        raise InvalidSpec("source.recurse", "must be true or false")
    if source.get("helm") is not None:
        source["helm"] = _helm(source["helm"])
    if source.get("kustomize") is not None:
        source["kustomize"] = _kustomize(source["kustomize"])
    if source.get("jsonnet") is not None:
        source["jsonnet"] = _jsonnet(source["jsonnet"])
    return source


# --- helm and kustomize ------------------------------------------------------------------------
def _helm(value) -> dict:
    if not isinstance(value, dict):
        raise InvalidSpec("source.helm", "must be an object")
    _known_keys(value, HELM_KEYS, "source.helm")
    helm = dict(value)
    name = helm.get("release_name", "")
    if not isinstance(name, str) or name and (len(name) > 53 or not RELEASE_NAME.match(name)):
        raise InvalidSpec("source.helm.release_name",
                          "a Helm release name: lowercase letters, digits, - and ., at most 53")
    files = _list_of_strings(helm.get("values_files"), "source.helm.values_files")
    if any(f.startswith("/") or "\0" in f for f in files):
        raise InvalidSpec("source.helm.values_files", "paths relative to the chart folder")
    if "values_files" in helm:
        helm["values_files"] = files
    if "values" in helm:
        helm["values"] = _helm_values(helm["values"])
    plain, strings = _helm_parameters(helm.get("parameters"))
    plain_strings, _ = _helm_parameters(helm.get("string_parameters"), "string_parameters")
    strings.update(plain_strings)
    both = sorted(set(plain) & set(strings))
    if both:
        raise InvalidSpec("source.helm.parameters", f"{both[0]!r} is given twice")
    if "parameters" in helm or plain:
        helm["parameters"] = plain
    if strings:
        helm["string_parameters"] = strings
    else:
        helm.pop("string_parameters", None)
    return helm


def _helm_values(value) -> str:
    """Inline values as YAML text (an object is written out as YAML)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return yaml.safe_dump(value, sort_keys=False) if value else ""
    if not isinstance(value, str):
        raise InvalidSpec("source.helm.values", "must be YAML text or an object")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InvalidSpec("source.helm.values", "invalid YAML" + (
            f" at line {mark.line + 1}" if mark else "")) from None
    if parsed is not None and not isinstance(parsed, dict):
        raise InvalidSpec("source.helm.values", "must be a YAML mapping (key: value)")
    return value


def _helm_parameters(value, key: str = "parameters") -> tuple[dict[str, str], dict[str, str]]:
    """(--set parameters, --set-string parameters) from the dict or Argo CD's list shape."""
    where = f"source.helm.{key}"
    if value is None:
        return {}, {}
    if isinstance(value, dict):
        bad = [name for name in value if not isinstance(name, str) or not name]
        if bad:
            raise InvalidSpec(where, "names must be non-empty strings")
        return {name: _scalar(v, f"{where}.{name}") for name, v in value.items()}, {}
    if not isinstance(value, list):
        raise InvalidSpec(where, 'must be {"name": "value"} or [{"name": "image.tag", '
                                 '"value": "1.2", "forceString": true}]')
    plain, strings = {}, {}
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidSpec(at, 'must be an object like {"name": "image.tag", "value": "1.2"}')
        _known_keys(entry, ARGO_PARAMETER_KEYS, at)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidSpec(f"{at}.name", "is required (a value path such as image.tag)")
        if name in plain or name in strings:
            raise InvalidSpec(at, f"{name!r} is given twice")
        force = entry.get("forceString", False)
        if not isinstance(force, bool):
            raise InvalidSpec(f"{at}.forceString", "must be true or false")
        (strings if force else plain)[name] = _scalar(entry.get("value", ""), f"{at}.value")
    return plain, strings


def _scalar(value, where: str) -> str:
    """A --set value as Helm reads it (true, 3, 1.5 and null keep their meaning)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidSpec(where, "must be a string, number or boolean (use values for structures)")


def _kustomize(value) -> dict:
    if not isinstance(value, dict):
        raise InvalidSpec("source.kustomize", "must be an object")
    _known_keys(value, KUSTOMIZE_KEYS, "source.kustomize")
    for key in ("name_prefix", "name_suffix", "namespace"):
        if not isinstance(value.get(key, ""), str):
            raise InvalidSpec(f"source.kustomize.{key}", "must be a string")
    kustomize = dict(value)
    if "images" in kustomize:
        kustomize["images"] = _list_of_strings(kustomize["images"], "source.kustomize.images")
    return kustomize


# --- jsonnet -----------------------------------------------------------------------------------
def _jsonnet(value) -> dict:
    if not isinstance(value, dict):
        raise InvalidSpec("source.jsonnet", "must be an object")
    _known_keys(value, JSONNET_KEYS, "source.jsonnet")
    if "extVars" in value and "ext_vars" in value:
        raise InvalidSpec("source.jsonnet", "give extVars or ext_vars, not both")
    jsonnet = {"tlas": _jsonnet_vars(value.get("tlas"), "tlas"),
               "ext_vars": _jsonnet_vars(value.get("extVars", value.get("ext_vars")), "extVars")}
    libs = []
    for lib in _list_of_strings(value.get("libs"), "source.jsonnet.libs"):
        try:
            libs.append(clean_path(lib))
        except InvalidSpec as exc:
            raise InvalidSpec("source.jsonnet.libs", f"{lib!r} {exc.message}") from None
    jsonnet["libs"] = libs
    return {k: v for k, v in jsonnet.items() if v}


def _jsonnet_vars(value, key: str) -> list[dict]:
    where = f"source.jsonnet.{key}"
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec(where, 'must be a list like [{"name": "replicas", "value": "2", '
                                 '"code": true}]')
    found = []
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidSpec(at, 'must be an object like {"name": "env", "value": "prod"}')
        _known_keys(entry, JSONNET_VAR_KEYS, at)
        name, text, code = entry.get("name"), entry.get("value", ""), entry.get("code", False)
        # A top-level argument is a function parameter: an identifier. Neither may hold "=",
        # which separates name and value on jsonnet's command line.
        if not isinstance(name, str) or not name or "=" in name or "\0" in name or (
                key == "tlas" and not JSONNET_IDENTIFIER.match(name)):
            raise InvalidSpec(f"{at}.name", "is required: a Jsonnet identifier such as replicas"
                              if key == "tlas" else "is required, without '='")
        if not isinstance(text, str) or "\0" in text:
            raise InvalidSpec(f"{at}.value", "must be a string (Jsonnet code when code is true)")
        if not isinstance(code, bool):
            raise InvalidSpec(f"{at}.code", "must be true or false")
        found.append({"name": name, "value": text, "code": code})
    return found


# --- shared ------------------------------------------------------------------------------------
def _known_keys(value: dict, known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise InvalidSpec(where, f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(known)}")


def _list_of_strings(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSpec(where, "must be a list of strings")
    return list(value)


CLEANERS = {"path": clean_path, "chart": clean_chart, "tool": clean_tool,
            "sync_options": clean_sync_options, "ignore_differences": clean_ignore_differences,
            "source": clean_source}
