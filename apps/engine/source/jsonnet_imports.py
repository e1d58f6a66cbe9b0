"""Jsonnet imports kept inside the repository.

The `jsonnet` binary (go-jsonnet) reads whatever an `import`, `importstr` or `importbin` names: an
absolute path, or `../` out of the checkout, and shows the file's text in its error message. It
has no option to confine it, so every import is checked here before the binary runs: the files a
render evaluates, the files they import (transitively) and the code given as top-level arguments
or external variables. Jsonnet only imports string literals ("computed imports are not
allowed"), so reading the literals after each import keyword finds every file it could open.

The tokenizer follows go-jsonnet's lexer (internal/parser/lexer.go) for what decides where a
string starts and ends: comments, the four quoted forms and text blocks.
"""
from __future__ import annotations

import bisect
import os
import re
from pathlib import Path

from ..errors import RenderError

IMPORT_KEYWORDS = ("import", "importstr", "importbin")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def imports(text: str) -> list[tuple[str, str, int]]:
    """(keyword, path, line) of each import of Jsonnet source `text`."""
    tokens = list(_tokens(text))
    found = []
    for (kind, value, line), following in zip(tokens, tokens[1:] + [("end", "", 0)]):
        if kind == "identifier" and value in IMPORT_KEYWORDS and following[0] == "string":
            found.append((value, following[1], line))
    return found


class Unreadable(ValueError):
    """Source that go-jsonnet's lexer refuses too (an unterminated string, comment or text
    block): refused here as well rather than scanned on a guess."""

    def __init__(self, line: int):
        super().__init__(f"line {line}")
        self.line = line


def _tokens(text: str):
    """("identifier" | "string" | "other", value, line) of `text`; comments and blanks skipped.
    Unreadable at the first lexing error."""
    i, n = 0, len(text)
    newlines = [m.start() for m in re.finditer("\n", text)]
    while i < n:
        line = bisect.bisect_left(newlines, i) + 1
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise Unreadable(line)
            i = end + 2
        elif text.startswith("|||", i):
            block = _text_block(text, i + 3)
            if block is None:
                raise Unreadable(line)
            i = block
            yield "string", "", line  # a text block is never a valid import path
        elif c in "\"'":
            end, value = _quoted(text, i + 1, c)
            if end is None:
                raise Unreadable(line)
            i = end
            yield "string", value, line
        elif c == "@":
            quote = text[i + 1:i + 2]
            if quote not in ("'", '"'):
                raise Unreadable(line)
            end, value = _verbatim(text, i + 2, quote)
            if end is None:
                raise Unreadable(line)
            i = end
            yield "string", value, line
        elif c.isdigit():
            i = _NUMBER.match(text, i).end()
            yield "other", "number", line
        elif match := _IDENTIFIER.match(text, i):
            i = match.end()
            yield "identifier", match.group(), line
        else:
            i += 1
            yield "other", c, line


def _quoted(text: str, i: int, quote: str) -> tuple[int | None, str]:
    out = []
    while i < len(text):
        c = text[i]
        if c == quote:
            return i + 1, "".join(out)
        if c == "\\" and i + 1 < len(text):
            e = text[i + 1]
            if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
                code = int(text[i + 2:i + 6], 16)
                i += 6
                low = text[i + 2:i + 6] if text.startswith("\\u", i) else ""
                if 0xD800 <= code < 0xDC00 and re.fullmatch(r"[0-9a-fA-F]{4}", low):
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                    i += 6
                out.append(chr(code) if code < 0xD800 or code > 0xDFFF else "\ufffd")
                continue
            out.append(_ESCAPES.get(e, "\\" + e))
            i += 2
            continue
        out.append(c)
        i += 1
    return None, ""


def _verbatim(text: str, i: int, quote: str) -> tuple[int | None, str]:
    out = []
    while i < len(text):
        if text[i] == quote:
            if text[i + 1:i + 2] == quote:
                out.append(quote)
                i += 2
                continue
            return i + 1, "".join(out)
        out.append(text[i])
        i += 1
    return None, ""


def _text_block(text: str, i: int) -> int | None:
    """Where the text block whose `|||` ends at `i` ends (go-jsonnet's rules), None if invalid."""
    if text.startswith("-", i):
        i += 1
    while i < len(text) and text[i] in " \t\r":
        i += 1
    if not text.startswith("\n", i):
        return None
    i += 1
    while text.startswith("\n", i):
        i += 1
    indent = re.match(r"[ \t]*", text[i:]).group()
    if not indent:
        return None
    while True:
        i += len(indent)
        end = text.find("\n", i)
        if end < 0:
            return None
        i = end + 1
        while text.startswith("\n", i):
            i += 1
        if not text.startswith(indent, i):
            rest = re.match(r"[ \t]*", text[i:]).group()
            i += len(rest)
            return i + 3 if text.startswith("|||", i) else None


# --- resolving ---------------------------------------------------------------------------------
class ImportGuard:
    """Checks that what a render evaluates imports files of the repository only.

    Paths are handled as go-jsonnet's FileImporter handles them: a relative import is joined to
    the importing file's folder (or a library path) and cleaned lexically, an absolute one is
    opened as written, and a file's imports resolve from the path it was found at. Each candidate
    must be inside the repository both as written and with symlinks resolved."""

    def __init__(self, root: Path, library_paths: list[Path]):
        self.root = str(root)
        self.library_paths = [str(p) for p in library_paths]  # as given with -J, in that order
        self._checked: set[str] = set()

    def check_file(self, path, rel) -> None:
        """`path` and everything it imports, transitively; `rel` names files in errors."""
        path = str(path)
        if path in self._checked:
            return
        self._checked.add(path)
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise RenderError(f"cannot read: {exc.strerror}", rel(Path(path))) from None
        self._check_source(text, os.path.dirname(path), rel(Path(path)), rel)

    def check_code(self, code: str, cwd: Path, what: str, rel) -> None:
        """Jsonnet code given as an argument: its imports resolve from the working folder."""
        self._check_source(code, str(cwd), what, rel)

    def _check_source(self, text: str, folder: str, where: str, rel) -> None:
        try:
            found_imports = imports(text)
        except Unreadable as exc:
            raise RenderError("invalid Jsonnet (unterminated string, comment or text block)",
                              where, exc.line) from None
        for keyword, target, line in found_imports:
            found = self._resolve(folder, target, where, line)
            if found is not None and keyword == "import":  # importstr/importbin: data only
                self.check_file(found, rel)

    def _resolve(self, folder: str, target: str, where: str, line: int) -> str | None:
        """The path go-jsonnet would open: the importing file's folder first, then each library
        path, right-most first. Every candidate must stay in the repository."""
        if os.path.isabs(target):
            candidates = [target]
        else:
            candidates = [os.path.normpath(os.path.join(base, target))
                          for base in [folder, *reversed(self.library_paths)]]
        found = None
        for candidate in candidates:
            if not (self._inside(os.path.normpath(candidate))
                    and self._inside(os.path.realpath(candidate))):
                raise RenderError(f"import {target!r} leads outside the repository", where, line)
            if found is None and os.path.isfile(candidate):
                found = candidate
        return found

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")
