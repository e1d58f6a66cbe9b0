"""Read-only queries of the dashboard pages: commit details for the history, the resource tree
with owned objects, and one resource's live and desired manifests with what differs.

Nothing here changes anything; the actions are in services.py.
"""
from __future__ import annotations

import json
import logging
import subprocess

from apps.clusters import services as clusters
from apps.engine.diff import comparable, differences, normalise, predict, prepare
from apps.engine.errors import EngineError
from apps.engine.health import assess
from apps.engine.resources import ResourceKey, key_of
from apps.repositories import services as repositories

from . import refreshing, rendering
from .models import Application
from .services import ApplicationError, _is_sha as is_sha

log = logging.getLogger(__name__)
# Kinds whose objects own others worth showing under them (ReplicaSets, Pods, Jobs).
OWNER_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
               ("apps", "ReplicaSet"), ("batch", "Job"), ("batch", "CronJob")}
CHILD_KINDS = (("apps/v1", "ReplicaSet"), ("v1", "Pod"), ("batch/v1", "Job"))


def commit_details(app: Application, shas) -> dict[str, dict]:
    """{sha: {"subject", "author"}} read from the shared clone cache (the workers fetched them);
    a commit not fetched yet is left out. No network: the page never waits for the git server."""
    wanted = [s for s in dict.fromkeys(shas) if s and is_sha(s)]
    git_dir = repositories.repo_cache().repo_dir(app.repository.url) / "repo.git"
    if not wanted or not (git_dir / "HEAD").exists():
        return {}
    try:
        out = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                             input=("\n".join(wanted) + "\n").encode(), capture_output=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot read commit details of %s: %s", app.name, exc)
        return {}
    details, at = {}, 0
    while at < len(out):  # "<sha> <type> <size>\n<content>\n", or "<sha> missing\n"
        line_end = out.index(b"\n", at)
        header = out[at:line_end].decode(errors="replace").split()
        at = line_end + 1
        if len(header) != 3:
            continue
        content = out[at:at + int(header[2])].decode(errors="replace")
        at += int(header[2]) + 1
        if header[1] == "commit":
            meta, _, message = content.partition("\n\n")
            author = next((line[7:] for line in meta.splitlines() if line.startswith("author ")), "")
            details[header[0]] = {"subject": message.strip().split("\n")[0],
                                  "author": author.split(" <")[0]}
    return details


def resource_tree(app: Application) -> list[dict]:
    """The app's resources as stored by its last refresh, each with the objects it owns
    (ReplicaSets, Pods, Jobs, found through ownerReferences in the app's namespace) as
    `children`, each with its health. The cluster not answering leaves the children out
    (`app.tree_error` says why); the stored list is always there."""
    nodes = [{**r, "key": resource_key(r), "children": []} for r in app.resources or []]
    owners = [n for n in nodes if (n["group"], n["kind"]) in OWNER_KINDS]
    app.tree_error = ""
    if not owners:
        return nodes
    if any(c.get("type") == "ClusterError" for c in app.conditions or []):
        app.tree_error = "owned objects not shown: the cluster did not answer the last refresh"
        return nodes  # the page must not wait for a cluster known to be down
    try:
        engine = clusters.runtime(app.cluster).cluster  # its discovery is kept; no watch starts
        found = []
        for api_version, kind in CHILD_KINDS:
            items, _ = engine.list(engine.resource_for(api_version, kind), app.namespace)
            found += items
    except Exception as exc:  # the page still shows the stored list
        app.tree_error = f"owned objects not shown: {exc}"
        return nodes
    children: dict[tuple, list] = {}
    for obj in found:
        for ref in obj["metadata"].get("ownerReferences") or []:
            children.setdefault((ref.get("kind"), ref.get("name")), []).append(obj)

    def subtree(kind, name, depth=0):
        if depth > 3:
            return []
        out = []
        for obj in sorted(children.get((kind, name), []), key=lambda o: o["metadata"]["name"]):
            health = assess(obj)
            out.append({"kind": obj["kind"], "name": obj["metadata"]["name"],
                        "health": health.status, "health_message": health.message,
                        "children": subtree(obj["kind"], obj["metadata"]["name"], depth + 1)})
        return out

    for node in owners:
        node["children"] = subtree(node["kind"], node["name"])
    return nodes


def resource_key(row: dict) -> str:
    return f"{row.get('group', '')}/{row['kind']}:{row.get('namespace', '')}/{row['name']}"


def resource_row(app: Application, key: str) -> dict | None:
    """The app's stored row of resource `key` (resource_key), None when it has none."""
    return next((r for r in app.resources or [] if resource_key(r) == key), None)


def resource_diff(app: Application, key: str) -> dict:
    """One resource compared now: {"live", "desired"} (desired = the live object as it would be
    after a sync, from the server's dry run, as the refresh compares), normalised the same way,
    and the JSON pointers that differ. ApplicationError when the key is not the app's."""
    if key not in {resource_key(r) for r in app.resources or []}:
        raise ApplicationError(f"{app.name} has no resource {key}")
    wanted = ResourceKey.parse(key)
    if refreshing.renders_outdated(app.name):  # the worker forgets its own renders
        rendering.forget_renders(app)
    try:
        desired = rendering.desired_state(app)
        engine = clusters.runtime(app.cluster).cluster  # its discovery is kept; no watch starts
        resources, _, _ = prepare(app.name, desired.manifests, engine, app.namespace)
        manifest = next((o for o in resources if key_of(o) == wanted), None)
        if manifest is not None:
            live = engine.read(manifest)
        else:
            resource = engine.discover().get((wanted.group, wanted.kind))
            live = engine.get(resource, wanted.namespace or None, wanted.name) if resource else None
        predicted = predict(engine, manifest) if manifest is not None else None
    except EngineError as exc:
        raise ApplicationError(f"cannot compare {key} now: {exc}") from None
    rules = [r for r in rendering.ignore_rules(app) if r.matches(wanted)]
    if live is not None and predicted is not None:
        live_doc, desired_doc = comparable(live, predicted, rules)
        return {"live": live_doc, "desired": desired_doc,
                "differences": differences(live_doc, desired_doc), "sha": desired.sha}
    return {"live": normalise(live) if live else None,
            "desired": normalise(manifest) if manifest else None,
            "differences": ["(missing)"] if live is None else ["(not in Git)"], "sha": desired.sha}


# --- showing a diff ----------------------------------------------------------------------------
_ABSENT = object()


def value_at(doc, pointer: str):
    """The value a JSON pointer names in `doc`, or _ABSENT."""
    if pointer in ("", "/"):
        return doc
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return _ABSENT
    return doc


def differing_values(diff: dict) -> list[dict]:
    """[{"pointer", "live", "desired"}] with each value as short JSON text ("absent" when one
    side lacks the field): the why-OutOfSync table of the diff view."""
    return [{"pointer": row["pointer"],
             **{side: _short_json(row[side]) if side in row else "absent"
                for side in ("live", "desired")}}
            for row in differing_pointers(diff)]


def differing_pointers(diff: dict) -> list[dict]:
    """[{"pointer", "live", "desired"}] with the values themselves (the API's form of
    differing_values); a side that lacks the field is left out."""
    rows = []
    for pointer in diff.get("differences", []):
        if not pointer.startswith("/"):
            continue
        row = {"pointer": pointer}
        for side in ("live", "desired"):
            value = value_at(diff[side], pointer) if diff.get(side) is not None else _ABSENT
            if value is not _ABSENT:
                row[side] = value
        rows.append(row)
    return rows


def _short_json(value, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def annotated_lines(doc, pointers: list[str]) -> list[dict]:
    """`doc` as YAML-like lines, each {"text", "pointer", "changed"}: changed when its field is,
    or lies under, one of `pointers`. A mapping in a list starts on its "- " line, as in YAML."""
    marks = [p for p in pointers if p.startswith("/")]
    lines: list[dict] = []

    def add(text, pointer):
        changed = any(pointer == m or pointer.startswith(m + "/") for m in marks)
        lines.append({"text": text, "pointer": pointer, "changed": changed})

    def entries(value, pointer, first, rest):
        if isinstance(value, dict):
            items = [(str(k).replace("~", "~0").replace("/", "~1"), f"{k}:", value[k])
                     for k in sorted(value, key=str)]
        else:
            items = [(str(i), "-", item) for i, item in enumerate(value)]
        for i, (token, label, child) in enumerate(items):
            prefix, sub = (first if i == 0 else rest), f"{pointer}/{token}"
            if isinstance(child, (dict, list)) and child:
                if label == "-" and isinstance(child, dict):
                    entries(child, sub, prefix + "- ", rest + "  ")
                else:
                    add(prefix + label, sub)
                    entries(child, sub, rest + "  ", rest + "  ")
            else:
                add(f"{prefix}{label} {json.dumps(child)}", sub)

    if doc:
        entries(doc, "", "", "")
    return lines


def resource_events(app: Application, row: dict, limit: int = 20) -> list[dict]:
    """The Kubernetes Events of one resource of the app, newest first: type, reason, message,
    count, last seen. Empty when the cluster does not answer (the page says nothing then)."""
    if not row.get("namespace"):
        return []
    try:
        engine = clusters.runtime(app.cluster).cluster
        events, _ = engine.list(engine.resource_for("v1", "Event"), row["namespace"])
    except Exception as exc:  # events are a help, never a reason for the page to fail
        log.info("events of %s not shown: %s", row.get("name"), exc)
        return []
    mine = [e for e in events if (e.get("involvedObject") or {}).get("kind") == row["kind"]
            and (e.get("involvedObject") or {}).get("name") == row["name"]]

    def last_seen(event):
        return (event.get("lastTimestamp") or event.get("eventTime")
                or event["metadata"].get("creationTimestamp") or "")
    return [{"type": e.get("type", ""), "reason": e.get("reason", ""), "message": e.get("message", ""),
             "count": e.get("count") or 1, "last_seen": last_seen(e)}
            for e in sorted(mine, key=last_seen, reverse=True)[:limit]]
