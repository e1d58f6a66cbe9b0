"""Chart versions and version ranges as Helm reads them (Masterminds/semver v3, which Helm and
Argo CD use): `1.2.3`, `1.2.*`, `1.2.x`, `~1.2`, `^1.2.3`, `>=1.0.0 <2.0.0`, `>=1, <2`,
`1.0 - 1.4`, `a || b`. A range matches pre-releases only when it names one (`>=1.0.0-0`).

Ported rather than shelled out to helm: a refresh resolves a range against every version of a
repository, and that must cost no process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_CV = (r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?"
       r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
       r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?")
_VERSION = re.compile(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
                      r"(?:-([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?"
                      r"(?:\+([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?$")
# Longest operators first: Python's alternation takes the first that fits.
_OPS_ORDERED = r"(>=|=>|<=|=<|!=|~>|=|>|<|~|\^|)"
_ONE = re.compile(rf"^\s*{_OPS_ORDERED}\s*({_CV})\s*$")
_FIND = re.compile(rf"{_OPS_ORDERED}\s*({_CV})")
_VALID = re.compile(rf"^(\s*{_OPS_ORDERED}\s*({_CV})\s*)"
                    rf"((?:\s+|,\s*){_OPS_ORDERED}\s*({_CV})\s*)*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_X = ("x", "X", "*")


class InvalidVersion(ValueError):
    """Not a version, or not a version range."""


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    original: str = ""

    @classmethod
    def parse(cls, text: str) -> "Version":
        match = _VERSION.match(text.strip())
        if not match:
            raise InvalidVersion(f"{text!r} is not a version")
        major, minor, patch, pre, _ = match.groups()
        return cls(int(major), int((minor or ".0")[1:]), int((patch or ".0")[1:]), pre or "", text)

    def _key(self):
        return (self.major, self.minor, self.patch)

    def __eq__(self, other):
        return self._key() == other._key() and self.pre == other.pre

    def __hash__(self):
        return hash((self._key(), self.pre))

    def __lt__(self, other):
        if self._key() != other._key():
            return self._key() < other._key()
        return _compare_pre(self.pre, other.pre) < 0


def _compare_pre(a: str, b: str) -> int:
    """Semantic versioning's precedence of pre-release parts: none ranks above any."""
    if a == b:
        return 0
    if not a or not b:
        return 1 if not a else -1
    for x, y in zip(a.split("."), b.split(".")):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(a.split(".")) > len(b.split("."))) - (len(a.split(".")) < len(b.split(".")))


@dataclass(frozen=True)
class _Constraint:
    op: str
    con: Version
    dirty: bool  # a part is missing or a wildcard
    minor_dirty: bool
    patch_dirty: bool

    def check(self, v: Version, include_pre: bool) -> bool:
        if v.pre and not include_pre:
            return False
        c = self.con
        op = self.op
        if op in ("", "="):
            return self._tilde(v) if self.dirty else v == c
        if op == "!=":
            if self.dirty:
                if c.major != v.major:
                    return True
                if self.minor_dirty:
                    return False
                if c.minor != v.minor:
                    return True
                if self.patch_dirty:
                    return _compare_pre(v.pre, c.pre) != 0 if (v.pre or c.pre) else False
            return v != c
        if op == ">":  # ">1.2" means above every 1.2.x, ">1" above every 1.x
            if not self.dirty:
                return v > c
            if v.major != c.major:
                return v.major > c.major
            if self.minor_dirty:
                return False
            if self.patch_dirty:
                return v.minor > c.minor
            return v > c
        if op == "<":
            return v < c
        if op in (">=", "=>"):
            return v >= c
        if op in ("<=", "=<"):
            if not self.dirty:
                return v <= c
            if v.major > c.major:
                return False
            return not (v.major == c.major and v.minor > c.minor and not self.minor_dirty)
        if op in ("~", "~>"):
            return self._tilde(v)
        return self._caret(v)  # "^"

    def _tilde(self, v: Version) -> bool:
        c = self.con
        if v < c:
            return False
        if c._key() == (0, 0, 0) and not self.minor_dirty and not self.patch_dirty:
            return True
        return v.major == c.major and (v.minor == c.minor or self.minor_dirty)

    def _caret(self, v: Version) -> bool:
        c = self.con
        if v < c:
            return False
        if c.major > 0 or self.minor_dirty:
            return v.major == c.major
        if v.major > 0:
            return False
        if c.minor > 0 or self.patch_dirty:
            return v.minor == c.minor
        if v.minor > 0:
            return False
        return v.patch == c.patch


def _parse_one(text: str) -> _Constraint:
    match = _ONE.match(text)
    if not match:
        raise InvalidVersion(f"improper constraint: {text.strip()}")
    op, _, major, minor, patch, pre_part = match.groups()[:6]
    minor, patch = (minor or "")[1:], (patch or "")[1:]
    pre = pre_part or ""
    if major in _X:
        return _Constraint(op, Version.parse(f"0.0.0{pre}"), True, False, False)
    if not minor or minor in _X:
        return _Constraint(op, Version.parse(f"{major}.0.0{pre}"), True, True, False)
    if not patch or patch in _X:
        return _Constraint(op, Version.parse(f"{major}.{minor}.0{pre}"), True, False, True)
    return _Constraint(op, Version.parse(f"{major}.{minor}.{patch}{pre}"), False, False, False)


@dataclass(frozen=True)
class Range:
    """Alternatives (||) of constraints that must all hold."""
    groups: tuple[tuple[_Constraint, ...], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> "Range":
        rewritten = _RANGE.sub(lambda m: f">= {m.group(1)}, <= {m.group(11)} ", text)
        groups = []
        for alternative in rewritten.split("||"):
            if not alternative.strip():
                groups.append((_Constraint("", Version(0, 0, 0), True, False, False),))
                continue
            if not _VALID.match(alternative):
                raise InvalidVersion(f"improper constraint: {alternative.strip()}")
            groups.append(tuple(_parse_one(m.group(0)) for m in _FIND.finditer(alternative)))
        return cls(tuple(groups), text)

    def matches(self, v: Version) -> bool:
        return any(all(c.check(v, any(x.con.pre for x in group)) for c in group)
                   for group in self.groups)


def newest_matching(constraint: str, versions: list[str]) -> str | None:
    """The newest of `versions` (as written) that `constraint` allows; a version written exactly
    as the constraint wins, as in Helm. InvalidVersion when `constraint` is no range."""
    if constraint in versions:
        return constraint
    wanted = Range.parse(constraint)
    best = None
    for text in versions:
        try:
            version = Version.parse(text)
        except InvalidVersion:
            continue  # not semver: only an exact match can pick it
        if wanted.matches(version) and (best is None or version > best):
            best = version
    return best.original if best else None


def check_range(constraint: str) -> None:
    """InvalidVersion unless `constraint` is a version or a version range."""
    Range.parse(constraint)
