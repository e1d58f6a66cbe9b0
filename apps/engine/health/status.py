"""Health statuses, their order, and small readers the per-kind rules share."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable


class Health(StrEnum):
    """A health status. Members are plain strings: Health.HEALTHY == "Healthy"."""

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"


HEALTHY, SUSPENDED, PROGRESSING = Health.HEALTHY, Health.SUSPENDED, Health.PROGRESSING
MISSING, DEGRADED, UNKNOWN = Health.MISSING, Health.DEGRADED, Health.UNKNOWN

# Best first; worst() picks the highest index (Argo CD's order).
_ORDER = (HEALTHY, SUSPENDED, PROGRESSING, MISSING, DEGRADED, UNKNOWN)
_RANK = {status: i for i, status in enumerate(_ORDER)}


@dataclass(frozen=True)
class HealthResult:
    status: Health
    message: str = ""

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.message else str(self.status)


def worst(statuses: Iterable[str | Health | HealthResult]) -> Health:
    """The worst of `statuses` in the order Healthy < Suspended < Progressing < Missing <
    Degraded < Unknown (Argo CD's documented order). Accepts strings, Health members or
    HealthResults; an unrecognised string counts as Unknown. No statuses at all is Healthy."""
    result = HEALTHY
    for s in statuses:
        if isinstance(s, HealthResult):
            s = s.status
        try:
            status = Health(s)
        except ValueError:
            status = UNKNOWN
        if _RANK[status] > _RANK[result]:
            result = status
    return result


# --- readers: missing fields read as Go's zero values, as Argo CD's typed structs see them ------
def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def num(value: Any) -> int:
    return 0 if value is None else int(value)


def generation(obj: dict) -> int:
    return num(meta(obj).get("generation"))


def observed(obj: dict) -> int:
    return num(status(obj).get("observedGeneration"))


def condition(conditions: list | None, type_: str) -> dict | None:
    """The first condition of `type_` in a conditions list (Argo CD reads the first)."""
    return next((c for c in conditions or [] if c.get("type") == type_), None)
