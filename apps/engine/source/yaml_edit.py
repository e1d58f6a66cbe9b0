"""Editing YAML in place: PyYAML's composer gives the exact position of each scalar and
collection, and only those characters change, so comments, key order, quoting, blank lines and
line ends of the rest of the file stay byte for byte (re-dumping would lose them)."""
from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import EngineError


class WriteBackError(EngineError):
    """A file cannot be edited as asked; the message names the file (and line) and cause."""


class MalformedFile(WriteBackError):
    pass


class KeyPathNotFound(WriteBackError):
    pass


class Doc:
    """One file's text and the edits to splice into it (position ranges of the original)."""

    def __init__(self, text: str, path: str):
        self.text, self.path = text, path
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.edits: list[tuple[int, int, str]] = []
        try:
            self._roots = [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise MalformedFile(f"{path}{where}: not valid YAML "
                                f"({getattr(exc, 'problem', None) or exc})") from None

    def roots(self) -> list[Node]:
        return self._roots

    def root(self) -> MappingNode:
        if len(self._roots) != 1 or not isinstance(self._roots[0], MappingNode):
            raise MalformedFile(f"{self.path}: expected one YAML mapping")
        return self._roots[0]

    def result(self) -> str:
        text = self.text
        # From the end, so earlier positions hold; two inserts at one place keep their order.
        order = sorted(range(len(self.edits)), key=lambda i: (self.edits[i][0], i), reverse=True)
        for start, end, new in (self.edits[i] for i in order):
            text = text[:start] + new + text[end:]
        return text

    def replace(self, node: ScalarNode, value: str) -> None:
        if node.style in ("|", ">"):
            raise MalformedFile(f"{self.path}:{line_of(node)}: a block scalar cannot be edited")
        if node.start_mark.index == node.end_mark.index:  # `key:` with nothing: insert
            at = self.text.rfind(":", 0, node.start_mark.index + 1) + 1
            self.edits.append((at, at, " " + _render(value, None)))
            return
        self.edits.append((node.start_mark.index, node.end_mark.index, _render(value, node)))

    def set_path(self, root: MappingNode, key_path: str, value: str) -> None:
        node: Node | None = root
        for part in key_path.split("."):
            node = get(node, part) if isinstance(node, MappingNode) else None
            if node is None:
                raise KeyPathNotFound(f"{self.path}: no key {key_path}")
        if not isinstance(node, ScalarNode):
            raise KeyPathNotFound(f"{self.path}:{line_of(node)}: {key_path} holds a "
                                  f"{'list' if isinstance(node, SequenceNode) else 'mapping'}, "
                                  "not a value")
        self.replace(node, value)

    def set_key(self, mapping: MappingNode, key: str, value: str) -> None:
        existing = get(mapping, key)
        if isinstance(existing, ScalarNode):
            self.replace(existing, value)
        elif existing is not None:
            raise MalformedFile(f"{self.path}:{line_of(existing)}: {key} is not a value")
        elif mapping.flow_style:
            at = self._before_closing(mapping)
            self.edits.append((at, at, f", {key}: {_render(value, None)}"))
        else:
            column = mapping.value[0][0].start_mark.column
            self._insert_lines(mapping.value[-1][1], [" " * column + f"{key}: "
                                                      f"{_render(value, None)}"])

    def delete_key(self, mapping: MappingNode, key: str) -> None:
        pairs = mapping.value
        for i, (k, v) in enumerate(pairs):
            if scalar(k) != key:
                continue
            if mapping.flow_style:
                start = pairs[i - 1][1].end_mark.index if i else k.start_mark.index
                end = v.end_mark.index if i else (pairs[1][0].start_mark.index
                                                  if len(pairs) > 1 else v.end_mark.index)
            else:
                start = self.text.rfind("\n", 0, k.start_mark.index) + 1
                end = self._line_end(v.end_mark.index)
            self.edits.append((start, end, ""))

    def append_entry(self, root: MappingNode, seq: SequenceNode | None, key: str,
                     fields: list[tuple[str, str]]) -> None:
        if seq is not None and seq.flow_style:
            item = "{" + ", ".join(f"{k}: {_render(v, None)}" for k, v in fields) + "}"
            at = self._before_closing(seq)
            self.edits.append((at, at, (", " if seq.value else "") + item))
            return
        if seq is not None and seq.value:
            dash = seq.start_mark.column
            first = seq.value[0]
            inner = first.value[0][0].start_mark.column if first.value else dash + 2
            anchor = seq.value[-1]
            lines = []
        else:
            dash = inner = root.value[0][0].start_mark.column
            inner += 2
            anchor = root.value[-1][1]
            lines = [" " * dash + f"{key}:"]
            if seq is not None:  # `images:` present but empty (`[]` handled above)
                raise MalformedFile(f"{self.path}: {key}: is empty but not a list")
        for n, (k, v) in enumerate(fields):
            prefix = " " * dash + "- " + " " * (inner - dash - 2) if n == 0 else " " * inner
            lines.append(f"{prefix}{k}: {_render(v, None)}")
        self._insert_lines(anchor, lines)

    def _before_closing(self, flow: Node) -> int:
        """Where an item goes in a flow collection: before its `}` or `]` and the spaces."""
        at = flow.end_mark.index - 1
        while at > 0 and self.text[at - 1] in " \t":
            at -= 1
        return at

    def _insert_lines(self, after: Node, lines: list[str]) -> None:
        # After the last scalar of `after`: a block collection "ends" at the next token, past
        # the blank lines and comments that follow it.
        while isinstance(after, (MappingNode, SequenceNode)) and after.value \
                and not after.flow_style:
            after = after.value[-1][1] if isinstance(after, MappingNode) else after.value[-1]
        at = self._line_end(after.end_mark.index)
        lead = "" if at == 0 or self.text[at - 1] == "\n" else self.newline
        self.edits.append((at, at, lead + "".join(line + self.newline for line in lines)))

    def _line_end(self, index: int) -> int:
        """Just past the end of the line holding `index` (the start of a node's next line)."""
        if index > 0 and self.text[index - 1] == "\n":
            return index  # a block node ends at the start of the following line
        nl = self.text.find("\n", index)
        return len(self.text) if nl < 0 else nl + 1


def _render(value: str, node: ScalarNode | None) -> str:
    """`value` as a YAML string scalar, in the original's quoting where it had one."""
    style = node.style if node is not None else None
    if style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if style == "'" or not _plain_ok(value):
        return "'" + value.replace("'", "''") + "'"
    return value


def _plain_ok(value: str) -> bool:
    try:
        return value != "" and yaml.safe_load(value) == value and "#" not in value
    except yaml.YAMLError:
        return False


def get(mapping: Node | None, key: str) -> Node | None:
    if isinstance(mapping, MappingNode):
        for k, v in mapping.value:
            if scalar(k) == key:
                return v
    return None


def scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) and node.value != "" else None


def line_of(node: Node) -> int:
    return node.start_mark.line + 1
