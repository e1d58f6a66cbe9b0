"""ignoreDifferences: what a comparison leaves out, in Argo CD's three spellings.

- `jsonPointers`: RFC 6901 pointers, removed from both sides.
- `jqPathExpressions`: jq path expressions; every path they match is removed from both sides
  (run as `del(<expression>)`, as Argo CD does). An expression that fails on an object (e.g. it
  iterates over a field that object lacks) leaves that object as it is; a refresh never fails
  because of one.
- `managedFieldsManagers`: fields the live object's `metadata.managedFields` says those managers
  own (fieldsV1) are removed from both sides, and so are list items they added that Git does not
  have (a container injected by a trusted controller). Argo CD ignores only owned values that
  differ; removing equal values changes no verdict, and ignoring the items they add is what
  users of this option expect from "those managers take precedence over Git".

The rules are applied by diff.comparable() to the live object and to the server's dry-run answer,
so every decision made from a comparison (Synced, ApplyOutOfSyncOnly, self-heal) honours them.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass

import jq

from .resources import ResourceKey


@dataclass(frozen=True)
class IgnoreRule:
    """One ignoreDifferences entry and the resources it applies to (empty name/namespace: any)."""
    kind: str
    json_pointers: tuple[str, ...] = ()
    group: str = ""
    name: str = ""
    namespace: str = ""
    jq_path_expressions: tuple[str, ...] = ()
    managed_fields_managers: tuple[str, ...] = ()

    def matches(self, key: ResourceKey) -> bool:
        return (self.kind == key.kind and self.group == key.group
                and self.name in ("", key.name) and self.namespace in ("", key.namespace))


# jq runs inside the worker with no time limit (Argo CD's gojq has one): what could loop forever
# or build huge outputs, and what reads outside the object (environment, files, input), is refused.
# Selecting by name or by path, the way ignore expressions are written, needs none of these.
_REFUSED = ("repeat", "while", "until", "range", "recurse", "limit", "env", "input", "inputs",
            "input_filename", "debug", "stderr", "halt", "halt_error", "import", "include",
            "def", "getpath", "splits", "combinations", "$__loc__", "$__prog_args")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_WORD = re.compile(r"(?<![.\w$])\$?[A-Za-z_]\w*")  # not after a dot: `.env` is a field


def jq_error(expression: str) -> str | None:
    """Why `expression` is not a jq path expression we run, or None if it is one."""
    if not expression.strip():
        return "is empty"
    if "\\(" in expression:
        return "string interpolation is not supported here"
    words = set(_WORD.findall(_STRING.sub('""', expression)))
    refused = sorted(words & set(_REFUSED) | {w for w in words if w.startswith("$ENV")})
    if refused:
        return f"{refused[0]} is not allowed in an ignore expression (it may not end, or reads " \
               f"outside the object)"
    try:
        # Alone first, so that text closing the del( ) wrapper ("a) | (b") is refused too.
        jq.compile(expression)
        _deletion(expression)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        return first.removeprefix("jq: error: ").rstrip(":")
    return None


def remove_ignored(doc: dict, rules) -> dict:
    """`doc` without what the rules' JSON pointers and jq expressions match (doc may be changed)."""
    for rule in rules:
        for pointer in rule.json_pointers:
            remove_pointer(doc, pointer)
        for expression in rule.jq_path_expressions:
            if _refused(expression):
                continue  # stored before it was checked: never run
            try:
                result = _deletion(expression).input_value(doc).all()
            except ValueError:
                continue  # compiled at input; fails only on objects it does not fit
            if len(result) == 1 and isinstance(result[0], dict):
                doc = result[0]
    return doc


def keep_live_values(desired: dict, live: dict, rules) -> dict:
    """`desired` with what the rules' JSON pointers and jq expressions ignore taken from `live`
    (dropped where live lacks it): Argo CD's RespectIgnoreDifferences=true, so a sync leaves
    those fields as the cluster has them. `managedFieldsManagers` rules are not applied here:
    they already make server-side apply leave those managers' fields alone when Git omits them,
    and the values Git sets are Git's."""
    rules = [r for r in rules if r.json_pointers or r.jq_path_expressions]
    if not rules:
        return desired
    kept = remove_ignored(copy.deepcopy(desired), rules)
    _restore(kept, live, remove_ignored(copy.deepcopy(live), rules))
    return kept


def _restore(target, live, normalised) -> None:
    """Copy into `target` each part of `live` that `normalised` (live minus the ignored parts)
    lost: keys removed, or a list whose items were removed (taken whole)."""
    for name, value in live.items():
        if name not in normalised:
            target[name] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(normalised[name], dict):
            if value != normalised[name]:
                if not isinstance(target.get(name), dict):
                    target[name] = {}
                _restore(target[name], value, normalised[name])
        elif isinstance(value, list) and value != normalised[name]:
            same_length = isinstance(normalised[name], list) and len(value) == len(normalised[name])
            mine = target.get(name)
            if same_length and isinstance(mine, list) and len(mine) == len(value) and all(
                    isinstance(x, dict) for x in value + mine + normalised[name]):
                for ours, theirs, left in zip(mine, value, normalised[name]):
                    _restore(ours, theirs, left)
            else:
                target[name] = copy.deepcopy(value)


def remove_owned(live: dict, predicted: dict, rules, managed_fields: list | None) -> None:
    """Remove from both documents what the rules' trusted managers own in the live object."""
    trusted = {m for rule in rules for m in rule.managed_fields_managers}
    for entry in managed_fields or ():
        if entry.get("manager") in trusted and isinstance(entry.get("fieldsV1"), dict):
            _drop(live, predicted, entry["fieldsV1"])


def _drop(live, predicted, fields: dict) -> None:
    """Walk one fieldsV1 set over `live` (and `predicted` alongside it), removing owned fields."""
    for name, sub in fields.items():
        if name == ".":
            continue
        kind, _, raw = name.partition(":")
        sub = sub if isinstance(sub, dict) else {}
        leaf = not (set(sub) - {"."})
        if kind == "f":
            if not isinstance(live, dict) or raw not in live:
                continue
            other = predicted if isinstance(predicted, dict) else {}
            if leaf:
                live.pop(raw)
                other.pop(raw, None)
                continue
            _drop(live[raw], other.get(raw), sub)
            if "." in sub and raw not in other and live[raw] in ({}, []):
                live.pop(raw)  # a map or list that manager created and now holds nothing else
        elif isinstance(live, list):
            index = _item(live, kind, raw)
            if index is None:
                continue
            other = _item(predicted, kind, raw) if isinstance(predicted, list) else None
            if (other is None and "." in sub) or leaf:
                live.pop(index)  # an item that manager added (or owns whole)
                if other is not None:
                    predicted.pop(other)
            elif other is None:
                _drop(live[index], None, sub)
            else:
                _drop(live[index], predicted[other], sub)


def _item(items: list, kind: str, raw: str) -> int | None:
    """Index of the list item a fieldsV1 key names: k:{key fields}, v:value or i:index."""
    try:
        if kind == "i":
            index = int(raw)
            return index if 0 <= index < len(items) else None
        wanted = json.loads(raw)
    except ValueError:
        return None
    for index, item in enumerate(items):
        if kind == "v" and item == wanted:
            return index
        if (kind == "k" and isinstance(item, dict) and isinstance(wanted, dict)
                and all(item.get(k) == v for k, v in wanted.items())):
            return index
    return None


def remove_pointer(doc, pointer: str) -> None:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]
    for token in tokens[:-1]:
        if isinstance(doc, dict):
            doc = doc.get(token)
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return
        if doc is None:
            return
    last = tokens[-1]
    if isinstance(doc, dict):
        doc.pop(last, None)
    elif isinstance(doc, list) and last.isdigit() and int(last) < len(doc):
        doc.pop(int(last))


@functools.lru_cache(maxsize=256)
def _refused(expression: str) -> bool:
    return jq_error(expression) is not None


@functools.lru_cache(maxsize=256)
def _deletion(expression: str):
    return jq.compile(f"del({expression})")
