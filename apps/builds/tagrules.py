"""What a tag rule says, checked: which tags it matches, the version it reads from a tag, the
image reference it makes, and the key of a build's inputs (same key, same image).

Everything here is plain text handling: no value of a rule reaches a shell, and the folder
paths are checked to stay inside the commit's tree before buildah sees them.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from apps.registries.oci import TAG, InvalidReference, check_repository

REGEX_PREFIX = "re:"
GLOB_SPECIALS = "*?["
PLACEHOLDERS = {"registry", "project", "name", "version", "sha"}
BUILD_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
# A build arg is baked into the image's history for anyone who pulls it: no secret belongs there.
SECRET_WORDS = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|AUTH", re.I)
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
MAX_BUILD_ARGS = 50


class RuleInvalid(ValueError):
    """A tag rule field that cannot be used; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Match:
    version: str  # read from the tag; empty: none (the short SHA stands in)


def match(pattern: str, tag: str) -> Match | None:
    """Whether `tag` matches the glob or `re:` regex `pattern`, and the version it carries: a
    regex's `version` group (else its first group), a glob's rest after its literal prefix."""
    if pattern.startswith(REGEX_PREFIX):
        found = re.fullmatch(pattern[len(REGEX_PREFIX):], tag)
        if not found:
            return None
        groups = found.groupdict()
        version = groups.get("version") or (found.group(1) if found.re.groups else "")
        return Match(version or "")
    if not fnmatch.fnmatchcase(tag, pattern):
        return None
    prefix = literal_prefix(pattern)
    return Match(tag[len(prefix):])


def literal_prefix(glob: str) -> str:
    cut = min((i for i in (glob.find(c) for c in GLOB_SPECIALS) if i >= 0), default=len(glob))
    return glob[:cut]


def check_rule(rule) -> None:
    """RuleInvalid naming the first field of `rule` (a TagRule) that cannot be used."""
    check_pattern(rule.effective_pattern)
    check_relative_path("dockerfile", rule.dockerfile, allow_dot=False)
    check_relative_path("context", rule.context, allow_dot=True)
    check_build_args(rule.build_args)
    if rule.platform and not PLATFORM.match(rule.platform):
        raise RuleInvalid("platform", "os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")
    check_template(rule.image_template)
    if rule.image_name and not _valid_repository(rule.image_name):
        raise RuleInvalid("image_name", "lower-case letters and digits, separated by '.', '_', "
                                        "'-' or '/', e.g. web")


def check_pattern(pattern: str) -> None:
    if pattern.startswith(REGEX_PREFIX):
        try:
            re.compile(pattern[len(REGEX_PREFIX):])
        except re.error as exc:
            raise RuleInvalid("pattern", f"not a regular expression: {exc}") from None
    elif not pattern.strip():
        raise RuleInvalid("pattern", "a glob such as build-* or a regex after re:")


def check_relative_path(field: str, value: str, *, allow_dot: bool) -> str:
    """`value` as a clean relative path inside the repository; RuleInvalid otherwise."""
    text = (value or "").strip()
    if not text:
        raise RuleInvalid(field, "a path relative to the repository's root is needed")
    if "\\" in text or "\0" in text:
        raise RuleInvalid(field, "a path with / separators only")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise RuleInvalid(field, f"{field} must be relative to the repository's root, not "
                                 "an absolute path")
    if ".." in path.parts:
        raise RuleInvalid(field, f"{field} must stay inside the repository: '..' is not "
                                 "allowed")
    if str(path) == "." and not allow_dot:
        raise RuleInvalid(field, f"{field} names a file, e.g. Dockerfile")
    return str(path)


def check_build_args(args) -> None:
    if not isinstance(args, dict):
        raise RuleInvalid("build_args", 'an object of names to values, e.g. {"VERSION": "1"}')
    if len(args) > MAX_BUILD_ARGS:
        raise RuleInvalid("build_args", f"at most {MAX_BUILD_ARGS} build args")
    for name, value in args.items():
        if not isinstance(name, str) or not BUILD_ARG_NAME.match(name):
            raise RuleInvalid("build_args", f"build arg names are letters, digits and _ "
                                            f"(not starting with a digit): {str(name)[:40]!r}")
        if not isinstance(value, (str, int, float, bool)) or isinstance(value, bool):
            raise RuleInvalid("build_args", f"build arg {name}: a string or number")
        if SECRET_WORDS.search(name):
            raise RuleInvalid("build_args", f"build arg {name} looks like a secret: build args "
                                            "are kept in the image's history, readable by "
                                            "whoever pulls it; no secret belongs there")


def check_template(template: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise RuleInvalid("image_template", f"not a template: {exc}") from None
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise RuleInvalid("image_template", f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                                            f"known: {', '.join(sorted(PLACEHOLDERS))}")
    if not template.startswith("{registry}/"):
        raise RuleInvalid("image_template", "the image goes to the rule's registry: the "
                                            "template starts with {registry}/")


def image_name(rule) -> str:
    if rule.image_name:
        return rule.image_name
    path = urlsplit(rule.repository.url).path if "://" in rule.repository.url \
        else rule.repository.url.rsplit(":", 1)[-1]
    last = path.rstrip("/").rsplit("/", 1)[-1]
    last = last[:-4] if last.endswith(".git") else last
    return re.sub(r"[^a-z0-9._-]+", "-", last.lower()).strip("-._") or "image"


def image_reference(rule, tag: str, sha: str) -> str:
    """The reference the rule's template makes for `tag` at `sha` (InvalidReference if that is
    no valid image reference)."""
    found = match(rule.effective_pattern, tag) if tag else None
    version = (found.version if found else "") or sha[:8]
    if not TAG.match(version):
        raise InvalidReference(f"tag {tag[:100]!r} gives version {version[:100]!r}, which is "
                               "not a valid image tag")
    reference = rule.image_template.format(
        registry=rule.registry.host, project=rule.project.name, name=image_name(rule),
        version=version, sha=sha[:8])
    repository, _, image_tag = reference[len(rule.registry.host) + 1:].rpartition(":")
    check_repository(repository)
    if not TAG.match(image_tag):
        raise InvalidReference(f"the template makes {reference[:200]!r}: no valid tag")
    return reference


def inputs_key(rule, sha: str) -> str:
    """What the image is made of: the commit, the Dockerfile, the context, the build args and
    the platform. Two builds with one key build the same image."""
    inputs = {"sha": sha, "dockerfile": rule.dockerfile, "context": rule.context,
              "build_args": {k: str(v) for k, v in sorted(rule.build_args.items())},
              "platform": rule.platform, "repository": rule.repository_id}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _valid_repository(name: str) -> bool:
    try:
        check_repository(name)
    except InvalidReference:
        return False
    return True
