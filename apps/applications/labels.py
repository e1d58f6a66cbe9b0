"""Application labels (Argo CD's metadata.labels): what a key and a value may hold, the
`key=value` lines of the forms, and label selectors (`team=web,env!=prod,env`) as a query.

The rules are Kubernetes': a key is an optional DNS-subdomain prefix and `/`, then a name of at
most 63 characters (letters, digits, `-`, `_`, `.`; starting and ending alphanumeric); a value
is empty or a name of the same shape. Selectors take Kubernetes' syntax: `k=v`, `k==v`, `k!=v`,
`k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-separated and all required.
"""
from __future__ import annotations

import re

from django.db.models import Q

NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_RULE = ("at most 63 characters: letters, digits, '-', '_' or '.', starting and ending "
             "with a letter or digit")
MAX_LABELS = 64


class InvalidLabel(ValueError):
    """A label key, value, line or selector that Kubernetes' rules refuse; says which and why."""


def check_key(key) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidLabel("a label key must not be empty")
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not PREFIX.match(prefix):
            raise InvalidLabel(f"label key {key!r}: the prefix before '/' must be a DNS subdomain "
                               "(lower-case letters, digits, '-' and '.'; at most 253 characters)")
    if len(name) > 63 or not NAME.match(name):
        raise InvalidLabel(f"label key {key!r}: the name must be {NAME_RULE}")
    return key


def check_value(key: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidLabel(f"label {key!r}: the value must be a string")
    if value and (len(value) > 63 or not NAME.match(value)):
        raise InvalidLabel(f"label {key!r}: the value {value!r} must be empty or {NAME_RULE}")
    return value


def clean(labels) -> dict[str, str]:
    """`labels` checked: a {key: value} dict of strings Kubernetes would accept."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidLabel("labels must be an object of label key to value")
    if len(labels) > MAX_LABELS:
        raise InvalidLabel(f"at most {MAX_LABELS} labels")
    return {check_key(k): check_value(k, v) for k, v in labels.items()}


def validate(labels) -> None:
    """The model field's validator (admin and full_clean), as a Django ValidationError."""
    from django.core.exceptions import ValidationError

    try:
        clean(labels)
    except InvalidLabel as exc:
        raise ValidationError(str(exc)) from None


def parse_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """The forms' text, one `key=value` per line (blank lines skipped): (labels, one message per
    bad line, naming its number)."""
    labels, errors = {}, []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        try:
            if not eq:
                raise InvalidLabel(f"{line!r} is not of the form key=value")
            check_value(check_key(key), value)
            if key in labels:
                raise InvalidLabel(f"label {key!r} is given twice")
        except InvalidLabel as exc:
            errors.append(f"line {number}: {exc}")
            continue
        labels[key] = value
    if len(labels) > MAX_LABELS:
        errors.append(f"at most {MAX_LABELS} labels")
    return labels, errors


def as_lines(labels: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


# --- selectors ---------------------------------------------------------------------------------
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_COMPARE = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|!=|=)\s*(?P<value>\S*)$")


def _requirements(selector: str) -> list[str]:
    """The comma-separated parts, keeping the commas inside `in (a,b)` together."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidLabel(f"selector {selector!r}: ')' without '('")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise InvalidLabel(f"selector {selector!r}: '(' without ')'")
    return parts + [current]


def selector_query(selector: str) -> Q:
    """A Q of the applications `selector` selects. As in Kubernetes, `k!=v` and `k notin (…)`
    also select applications without label k. InvalidLabel names the part it cannot read."""
    query = Q()
    for part in (p.strip() for p in _requirements(selector)):
        if not part:
            raise InvalidLabel(f"selector {selector!r}: an empty requirement (two commas, or a "
                               "comma at an end)")
        query &= _requirement(part)
    return query


def _requirement(part: str) -> Q:
    try:
        if match := _SET.match(part):
            key = check_key(match["key"])
            values = [v.strip() for v in match["values"].split(",")]
            if not any(values):
                raise InvalidLabel("give at least one value in the parentheses")
            anyof = Q()
            for value in values:
                anyof |= Q(labels__contains={key: check_value(key, value)})
            return anyof if match["op"] == "in" else ~anyof
        if match := _COMPARE.match(part):
            key, value = check_key(match["key"]), match["value"]
            has = Q(labels__contains={key: check_value(key, value)})
            return ~has if match["op"] == "!=" else has
        if part.startswith("!"):
            return ~Q(labels__has_key=check_key(part[1:].strip()))
        return Q(labels__has_key=check_key(part))
    except InvalidLabel as exc:
        raise InvalidLabel(f"selector part {part!r}: {exc}") from None
