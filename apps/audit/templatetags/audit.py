import json

from django import template

register = template.Library()
NESTED = ("changed", "members")  # {field: change} maps, shown one line per field


@register.filter
def audit_lines(details) -> list[tuple[str, str]]:
    """An entry's details as (label, text) lines: each changed field or member on a line of its
    own ("username", "deploy → robot"), empty values left out."""
    lines = []
    for key, value in (details or {}).items():
        if key in NESTED and isinstance(value, dict):
            lines += [(f"{key}.{name}" if key != "changed" else name, _text(change))
                      for name, change in value.items()]
        elif value not in ("", None, [], {}):
            lines.append((key, _text(value)))
    return lines


def _text(value) -> str:
    if isinstance(value, dict) and set(value) == {"from", "to"}:
        return f"{_short(value['from'])} → {_short(value['to'])}"
    return _short(value)


def _short(value) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:119] + "…"
