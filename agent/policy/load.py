"""Load YAML files into plain data, keeping the line and column of every key and value.

Hostile input is refused with a Problem rather than a traceback: files over a size
limit, non-UTF-8 bytes, syntax errors, tabs, duplicate keys, recursive aliases, alias
bombs (documents that expand past a node budget), nesting past a depth limit and tags
that do not make plain data (`!!binary`, `!!set`, `!custom`). Merge keys (`<<: *base`)
are supported; a merged key's position is where the anchored mapping wrote it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from agent.errors import Problem, Problems, dotted

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Loc = tuple[str | int, ...]
Pos = tuple[int, int]  # 1-based line and column


@dataclass
class Document:
    """One YAML document as plain data, with positions for every path inside it."""

    file: str
    index: int
    data: Any
    start: Pos
    values: dict[Loc, Pos] = field(default_factory=dict)
    keys: dict[Loc, Pos] = field(default_factory=dict)
    folder: Path | None = None  # the policies folder it was found in (includes start there)
    origins: dict[Loc, str] = field(default_factory=dict)  # parts included from other files
    included: list[Path] = field(default_factory=list)  # the task files those came from

    def origin(self, loc: Loc) -> str:
        """The file that wrote loc: this one, or the include chain that brought it in."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.origins:
                return self.origins[loc[:end]] or self.file
        return self.file

    def pos(self, loc: Loc, at_key: bool = False) -> Pos:
        """Position of the value at loc (or its key), else of its nearest existing ancestor."""
        if at_key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return self.start

    def problem(
        self, loc: Loc, context: str, field_: str, message: str, at_key: bool = False
    ) -> Problem:
        line, col = self.pos(loc, at_key)
        return Problem(self.origin(loc), line, col, context, field_, message)


def find_files(paths: list[Path]) -> list[Path]:
    """Files named directly, and *.yml / *.yaml under directories, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
            )
        else:
            found.append(path)
    return found


def load_file(path: Path) -> list[Document]:
    """Every non-empty document of one file; raises Problems if the file cannot be read."""
    name = str(path)
    text = _read_text(path, name)
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    docs: list[Document] = []
    refused: list[Problem] = []  # documents that parse but are not plain data
    try:
        for index, raw in enumerate(yaml.load_all(text)):
            if raw is None:
                continue
            try:
                docs.append(_convert(name, index, raw))
            except Problems as e:
                refused.extend(e.problems)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (e.context, e.problem) if part)
        duplicate = re.search(r'found duplicate key "(.*?)" with value', message)
        if duplicate:  # ruamel's text repeats both values, which may be secrets
            message = f'duplicate key "{duplicate.group(1)}"'
        if "\t" in (e.problem or "") or "'\\t'" in (e.problem or ""):
            message += " (YAML does not allow tabs for indentation; use spaces)"
        raise Problems([Problem(name, line, col, "", "", f"invalid YAML: {message}")]) from None
    except YAMLError as e:
        raise Problems([Problem(name, 1, 1, "", "", f"invalid YAML: {e}")]) from None
    except RecursionError:  # ruamel composes nodes recursively: find where it got too deep
        line, col = _too_deep(text)
        raise Problems([Problem(name, line, col, "", "",
                                f"nested deeper than {MAX_DEPTH} levels")]) from None
    if refused:
        raise Problems(refused)
    if not docs:
        raise Problems([Problem(name, 1, 1, "", "", "file is empty: expected a YAML mapping")])
    return docs


def load_one(path: Path, context: str) -> Document:
    """The file's only document; a second one is a Problem at its start."""
    docs = load_file(path)
    if len(docs) > 1:
        raise Problems([Problem(str(path), docs[1].start[0], 1, context, "",
                                "expected one YAML document")])
    return docs[0]


def _too_deep(text: str) -> Pos:
    """Where nesting first passes MAX_DEPTH, found from parser events (not recursive)."""
    depth = 0
    for event in YAML(typ="rt", pure=True).parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark.line + 1, event.start_mark.column + 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return 1, 1


def _read_text(path: Path, name: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise Problems(
                [Problem(name, 1, 1, "", "", f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")]
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Problems([Problem(name, 0, 0, "", "", "no such file or directory")]) from None
    except OSError as e:
        raise Problems([Problem(name, 0, 0, "", "", f"cannot read: {e.strerror}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        message = f"not valid UTF-8: byte 0x{raw[e.start]:02x} cannot be decoded"
        raise Problems([Problem(name, line, col, "", "", message)]) from None


class _Walker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.nodes = 0
        self.active: set[int] = set()

    def fail(self, loc: Loc, message: str) -> Problems:
        return Problems([self.doc.problem(loc, "", dotted(loc), message)])

    def plain(self, node: Any, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                loc, f"document expands to more than {MAX_NODES} values (alias bomb?)"
            )
        if len(loc) > MAX_DEPTH:
            raise self.fail(loc, f"nested deeper than {MAX_DEPTH} levels")
        tag = _tag(node)
        if tag is not None:
            raise self.fail(loc, f"YAML tag {tag} is not supported here: write plain "
                                 "strings, numbers, lists and mappings")
        if isinstance(node, CommentedMap | CommentedSeq):
            if id(node) in self.active:
                raise self.fail(loc, "recursive alias: a node contains itself")
            self.active.add(id(node))
            try:
                return self._container(node, loc)
            finally:
                self.active.discard(id(node))
        if isinstance(node, TaggedScalar):  # an explicit !!str
            return str(node.value)
        return _scalar(node)

    def _container(self, node: CommentedMap | CommentedSeq, loc: Loc) -> Any:
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key in node:
                child = (*loc, str(key))
                kline, kcol, vline, vcol = _key_value_pos(node, key)
                self.doc.keys[child] = (kline + 1, kcol + 1)
                self.doc.values[child] = (vline + 1, vcol + 1)
                out[str(key)] = self.plain(node[key], child)
            return out
        items: list[Any] = []
        for i, item in enumerate(node):
            child = (*loc, i)
            line, col = node.lc.item(i)
            self.doc.values[child] = (line + 1, col + 1)
            items.append(self.plain(item, child))
        return items


PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
              ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


def _tag(node: Any) -> str | None:
    """The tag of a node that is not plain data, in YAML's short form; None if plain."""
    if isinstance(node, bytes):
        return "!!binary"
    if type(node) in (CommentedMap, CommentedSeq, TaggedScalar):
        tag = getattr(node.tag, "value", None)
        return None if tag is None or tag in PLAIN_TAGS else tag.replace("tag:yaml.org,2002:", "!!")
    if node is None or isinstance(node, bool | int | float | str | datetime.date):
        return None
    return "!!" + type(node).__name__.removeprefix("Commented").lower()  # !!set, !!orderedmap


def _key_value_pos(node: CommentedMap, key: Any) -> tuple[int, int, int, int]:
    """0-based key and value positions; a merged key's come from the mapping merged in."""
    if key in node.lc.data:
        (kline, kcol), (vline, vcol) = node.lc.key(key), node.lc.value(key)
        return kline, kcol, vline, vcol
    for source in getattr(node, "merge", ()):
        merged = source[1] if isinstance(source, tuple) else source
        if isinstance(merged, CommentedMap) and key in merged:
            return _key_value_pos(merged, key)
    return node.lc.line, node.lc.col, node.lc.line, node.lc.col


def _scalar(node: Any) -> Any:
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):
        return node.isoformat()
    return str(node)


def _convert(file: str, index: int, raw: Any) -> Document:
    start = (raw.lc.line + 1, raw.lc.col + 1) if hasattr(raw, "lc") else (1, 1)
    doc = Document(file, index, None, start)
    doc.data = _Walker(doc).plain(raw, ())
    return doc


def iter_documents(paths: list[Path]) -> Iterator[Document | Problems]:
    """Documents of every file in order; a file that cannot be loaded yields its Problems.

    A folder's walk skips task files (one document holding a list of tasks: what policies
    include); such a file named directly is a problem."""
    for path in paths:
        folder = path if path.is_dir() else path.parent
        for found in find_files([path]):
            try:
                docs = load_file(found)
            except Problems as e:
                yield e
                continue
            if len(docs) == 1 and _task_file(docs[0].data):
                if found != path:
                    continue
                yield Problems([docs[0].problem((), "", "", "a list of tasks is a task file, "
                                                "for a policy's `include:`; name the policy "
                                                "that includes it, or its folder")])
                continue
            for doc in docs:
                doc.folder = folder
                yield doc


def _task_file(data: Any) -> bool:
    """A list of tasks, not a policy written as a list by mistake."""
    return isinstance(data, list) and not any(
        isinstance(item, dict) and ("apiVersion" in item or "kind" in item) for item in data)
