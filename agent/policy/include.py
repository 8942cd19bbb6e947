"""Shared task files: `- include: FILE` in a kind's lists, with vars:, when: and tags: for
what it includes.

    spec:
      tasks:
        - include: common/users.yml     # relative to the policies folder
          vars: {group: admins}
        - files.line: {path: /etc/motd, line: hello}

A task file is one YAML document holding a list (of tasks, which may include other
files). It lies inside the policies folder (the folder named on the command line, or the
one holding a policy file named directly), whose walk does not take it for a policy.
When the policy is loaded, the items take the include's place, each with the include's
vars under its own `vars:`, its `when:` and-ed with the include's and the include's tags
added to its own (Ansible's import_tasks), so they are validated as if written in place. A problem in
an included item names the chain that led to it (`policies/web.yml:12 →
policies/common/users.yml:4:7: ...`); a cycle, a missing file, one outside the folder
or one that is not a list is a problem at the include.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import Problem, Problems, dotted
from agent.policy.load import Document, Loc, load_one

INCLUDE = "include"
VARS = "vars"
WHEN = "when"
TAGS = "tags"
MAX_DEPTH = 8


@dataclass(frozen=True)
class _Item:
    value: Any
    source: Document  # the file that wrote it
    loc: Loc  # where in source
    origin: str  # "" for the policy's own file, else the include chain
    given: tuple[tuple[Loc, Document, Loc, str], ...] = ()  # what an include gave it, from where


def expand(doc: Document, keys: tuple[str, ...], context: str) -> list[Problem]:
    """doc with every include in its spec.KEY lists replaced by what it includes; the
    problems found (doc is then left as it was)."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if not isinstance(spec, dict) or doc.folder is None:
        return []
    problems: list[Problem] = []
    for key in keys:
        base: Loc = ("spec", key)
        items = spec.get(key)
        if not isinstance(items, list) or not any(_is_include(i) for i in items):
            continue
        found = _Expander(doc, doc.folder, context, problems).items(doc, base, items, "", ())
        if not problems:
            spec[key] = [item.value for item in found]
            _place(doc, base, found)
    return problems


def _is_include(value: Any) -> bool:
    return isinstance(value, dict) and INCLUDE in value


class _Expander:
    def __init__(self, doc: Document, folder: Path, context: str, problems: list[Problem]):
        self.doc, self.folder, self.context, self.problems = doc, folder, context, problems

    def fail(self, source: Document, origin: str, loc: Loc, message: str, at_key: bool = False
             ) -> None:
        problem = source.problem(loc, self.context, dotted(loc), message, at_key)
        if origin:
            problem = Problem(origin, problem.line, problem.col, problem.context,
                              problem.field, problem.message)
        self.problems.append(problem)

    def items(self, source: Document, base: Loc, values: list[Any], origin: str,
              chain: tuple[Path, ...]) -> list[_Item]:
        out: list[_Item] = []
        for i, value in enumerate(values):
            loc = (*base, i)
            if not _is_include(value):
                out.append(_Item(value, source, loc, origin))
                continue
            out.extend(self.include(source, loc, value, origin, chain))
        return out

    def include(self, source: Document, loc: Loc, value: dict[str, Any], origin: str,
                chain: tuple[Path, ...]) -> list[_Item]:
        extra = [k for k in value if k not in (INCLUDE, VARS, WHEN, TAGS)]
        if extra:
            self.fail(source, origin, (*loc, extra[0]), f"an include takes vars:, when: and "
                      f"tags: beside it; found {extra[0]!r}", at_key=True)
            return []
        when, tags = value.get(WHEN), value.get(TAGS, [])
        tags = [tags] if isinstance(tags, str) else tags
        if when is not None and not isinstance(when, str | bool):
            self.fail(source, origin, (*loc, WHEN), "expected a condition (a Jinja2 expression)")
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.fail(source, origin, (*loc, TAGS), "expected a list of tags")
            return []
        name, given = value[INCLUDE], value.get(VARS) or {}
        if not isinstance(given, dict):
            self.fail(source, origin, (*loc, VARS), "expected a mapping of variables")
            return []
        path = self._path(source, origin, (*loc, INCLUDE), name, chain)
        if path is None:
            return []
        line, _ = source.pos((*loc, INCLUDE))
        label = f"{origin or source.file}:{line} → {path}"
        try:
            included = load_one(path, self.context)
        except Problems as e:
            self.problems.extend(Problem(f"{origin or source.file}:{line} → {p.file}", p.line,
                                         p.col, p.context, p.field, p.message)
                                 for p in e.problems)
            return []
        if not isinstance(included.data, list):
            self.fail(source, origin, (*loc, INCLUDE), f"{path} is not a task file: expected "
                      "a YAML list of tasks")
            return []
        self.doc.included.append(path)
        found = self.items(included, (), included.data, label, (*chain, path.resolve()))
        gave = tuple(((VARS, k), source, (*loc, VARS, k), origin) for k in given) + (
            (((WHEN,), source, (*loc, WHEN), origin),) if when is not None else ())
        return [_Item(_inherit(item.value, given, when, tags), item.source, item.loc,
                      item.origin, (*gave, *item.given) if isinstance(item.value, dict) else ())
                for item in found]

    def _path(self, source: Document, origin: str, loc: Loc, name: Any,
              chain: tuple[Path, ...]) -> Path | None:
        if not isinstance(name, str) or not name.strip():
            self.fail(source, origin, loc, "expected the path of a task file, relative to the "
                      f"policies folder {self.folder}")
            return None
        path = self.folder / name
        resolved = path.resolve()
        if Path(name).is_absolute() or not resolved.is_relative_to(self.folder.resolve()):
            self.fail(source, origin, loc, f"{name} is outside the policies folder "
                      f"{self.folder}: a task file is included from there")
            return None
        if not resolved.is_file():
            self.fail(source, origin, loc, f"no task file {path}")
            return None
        if resolved in chain:
            root = self.folder.resolve()
            cycle = " → ".join(str(p.relative_to(root)) for p in (*chain, resolved))
            self.fail(source, origin, loc, f"include cycle: {cycle}")
            return None
        if len(chain) >= MAX_DEPTH:
            self.fail(source, origin, loc, f"includes nest deeper than {MAX_DEPTH} files")
            return None
        return path


def _inherit(value: Any, given: dict[str, Any], when: str | bool | None, tags: list[str]
             ) -> Any:
    """An included item with the include's vars under its own, its when: and-ed with the
    include's, and the include's tags added to its own (as Ansible's import_tasks does)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    if given:
        own = value.get(VARS)
        out[VARS] = {**given, **own} if isinstance(own, dict) else \
            (own if own is not None else dict(given))
    if when is not None:
        own_when = value.get(WHEN)
        out[WHEN] = when if own_when is None else (
            f"({_condition(when)}) and ({_condition(own_when)})")
    if tags:
        own_tags = value.get(TAGS, [])
        own_tags = [own_tags] if isinstance(own_tags, str) else own_tags
        out[TAGS] = [*tags, *own_tags] if isinstance(own_tags, list) else own_tags
    return out


def _condition(when: Any) -> str:
    return ("true" if when else "false") if isinstance(when, bool) else str(when)


def _place(doc: Document, base: Loc, items: list[_Item]) -> None:
    """Positions (and origins) of the expanded list's items, under base in doc."""
    n = len(base)
    moved = [loc for loc in (*doc.values, *doc.keys, *doc.origins) if loc[:n] == base and
             len(loc) > n]
    originals = {"values": dict(doc.values), "keys": dict(doc.keys)}
    for loc in moved:
        doc.values.pop(loc, None)
        doc.keys.pop(loc, None)
        doc.origins.pop(loc, None)
    for j, item in enumerate(items):
        at = (*base, j)
        size = len(item.loc)
        source_maps = originals if item.source is doc else {"values": item.source.values,
                                                              "keys": item.source.keys}
        for name, target in (("values", doc.values), ("keys", doc.keys)):
            for loc, pos in source_maps[name].items():
                if loc[:size] == item.loc:
                    target[(*at, *loc[size:])] = pos
        if item.source is not doc:
            for loc, label in item.source.origins.items():
                if loc[:size] == item.loc:
                    doc.origins[(*at, *loc[size:])] = label
        if item.origin:
            doc.origins[at] = item.origin
        for sub, source, loc, origin in item.given:
            target_loc = (*at, *sub)
            if (*item.loc, *sub) in source_maps["values"]:
                continue  # the item's own var (or when:) keeps its own position
            given = originals if source is doc else {"values": source.values,
                                                     "keys": source.keys}
            doc.values[target_loc] = given["values"].get(loc, source.start)
            doc.keys[target_loc] = given["keys"].get(loc, source.start)
            doc.origins[target_loc] = origin
