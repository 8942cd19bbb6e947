"""pyinfra's operations and their parameters, read once per pyinfra version and kept in a
cache file, so that validating a `tasks` policy does not import pyinfra's operation
modules (about half a second) each time.

The file holds, per module and operation, each parameter's name, type (written as
JSON: builtins, unions, list/dict/tuple/set and Literal; never evaluated) and default
(JSON), and whether the operation takes **kwargs. An operation whose types or defaults
cannot be written so is marked `live`: the catalogue then reads it from pyinfra as before.
The file's name carries pyinfra's version and this format's, so an upgrade reads anew; a
file that cannot be read is built again, and one that cannot be written is not kept.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import tempfile
import types
import typing
from functools import cache
from importlib import import_module
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

FORMAT = 2
NAMES: dict[str, Any] = {"Any": Any, "None": None, "str": str, "int": int, "float": float,
                         "bool": bool, "bytes": bytes}
GENERICS: dict[str, Any] = {"Literal": Literal, "Union": typing.Union, "list": list,
                            "dict": dict, "tuple": tuple, "set": set}
SCALARS = (str, int, float, bool, bytes)
Entry = dict[str, Any]
Written = str | list[Any]  # a type as JSON: see write_type()


def cache_file() -> Path:
    folder = os.environ.get("OPSAGENT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "opsagent")
    return Path(folder) / f"pyinfra-{version('pyinfra')}-operations-{FORMAT}.json"


@cache
def catalogue() -> dict[str, dict[str, Entry]]:
    """{module: {operation: entry}}, from the cache file, else read from pyinfra and kept."""
    path = cache_file()
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return _checked(data["modules"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none, or broken: read pyinfra again
    modules = build()
    _keep(path, {"format": FORMAT, "pyinfra": version("pyinfra"), "modules": modules})
    return modules


def _checked(modules: Any) -> dict[str, dict[str, Entry]]:
    """The file's modules if every entry reads back; an exception otherwise."""
    for ops in modules.values():
        for entry_ in ops.values():
            if not entry_.get("live"):
                bool(entry_["any"])
                for param in entry_["params"]:
                    str(param["name"]), read_type(param["type"])
    return typing.cast(dict[str, dict[str, Entry]], modules)


def build() -> dict[str, dict[str, Entry]]:
    from agent.engine import catalog  # the live reading of pyinfra

    return {module: {op: entry(getattr(import_module(f"pyinfra.operations.{module}"), op)._inner)
                     for op in catalog.live_operations(module)}
            for module in catalog.live_modules()}


def entry(inner: Any) -> Entry:
    """One operation's parameters as the file keeps them, or {"live": True}."""
    from agent.engine.catalog import read_signature

    found, takes_any = read_signature(inner)
    params: list[dict[str, Any]] = []
    for name, tp, default in found:
        written = write_type(tp)
        if written is None:
            return {"live": True}
        item: dict[str, Any] = {"name": name, "type": written}
        if default is not ...:
            if not _json_exact(default):
                return {"live": True}
            item["default"] = default
        params.append(item)
    return {"params": params, "any": takes_any}


def write_type(tp: Any) -> Written | None:
    """A type as JSON that read_type() gives back ("str", ["list", "str"], ["Union", ...],
    ["Literal", "present", "absent"]), or None where it cannot be written so."""
    if tp is Any:
        return "Any"
    if tp is None or tp is type(None):
        return "None"
    if tp in SCALARS:
        return str(tp.__name__)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if all(a is None or type(a) in (str, int, bool) for a in args):
            return ["Literal", *args]
        return None
    if origin in (typing.Union, types.UnionType):
        name = "Union"
    elif origin in (list, dict, tuple, set):
        name = origin.__name__
    else:
        return None
    parts = [write_type(a) if a is not Ellipsis else "..." for a in args]
    return None if any(p is None for p in parts) else [name, *typing.cast(list[Written], parts)]


def read_type(written: Written) -> Any:
    """The type write_type() wrote; ValueError for anything else."""
    if isinstance(written, str):
        if written not in NAMES:
            raise ValueError(f"not a type of the catalogue: {written!r}")
        return NAMES[written]
    if not isinstance(written, list) or not written or written[0] not in GENERICS:
        raise ValueError(f"not a type of the catalogue: {written!r}")
    name, args = written[0], written[1:]
    if name == "Literal":
        return Literal[tuple(args)]
    types_ = tuple(... if a == "..." else read_type(a) for a in args)
    if name == "Union":
        return functools.reduce(operator.or_, types_)
    generic = GENERICS[name]
    return generic[types_] if types_ else generic


def _json_exact(value: Any) -> bool:
    """Whether JSON gives the value back as it is (types included: no tuple becomes a list)."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(_json_exact(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    return False


def _keep(path: Path, data: dict[str, Any]) -> None:
    """Written beside, then renamed: a reader sees the old file or the whole new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    except OSError:
        return  # a read-only home: read pyinfra again next time
