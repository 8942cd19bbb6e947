"""Which fact reads the host's fact reader may answer natively (fact_reader.py), and the
fact a native answer hands back along with it.

A File, Directory or Link fact of an absolute path, a Sha1File, or a FindInFile (as
files.line reads it), read with no argument that shapes how its command runs (shell,
folder, environment, exit codes), is sent as {"command", "stat" | "sha1" | "grep": ...}:
the reader answers it without starting a process when it can be sure of printing what
the command prints, else runs the command.
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.facts.files import Directory, File, FindInFile, Link, Sha1File

WAYS: dict[type, str] = {File: "stat", Directory: "stat", Link: "stat", Sha1File: "sha1",
                         FindInFile: "grep"}


def request(asking: tuple[Any, tuple[Any, ...], dict[str, Any]] | None, shaping: str
            ) -> dict[str, Any] | None:
    """{"stat" | "sha1": path} or {"grep": [path, pattern]} for a fact read the reader may
    answer, else None.

    asking is the fact being read (its class, arguments), shaping its command's (see
    prefetch._key)."""
    if asking is None or not _plain(json.loads(shaping)):
        return None
    cls, args, kwargs = asking
    way = WAYS.get(cls)
    if way == "grep":
        return _grep(args, kwargs)
    path = _path(args, kwargs)
    if way is None or path is None:
        return None
    return {way: path}


def sha1_command(path: str) -> str:
    """The text of the Sha1File command for path, as prefetch keys it."""
    return str(Sha1File().command(path).get_raw_value())


def _plain(shaping: dict[str, Any]) -> bool:
    """Run by sh in the login folder, with no environment of its own, 0 for success."""
    return (not shaping["_chdir"] and not shaping["_env"]
            and shaping["_shell_executable"] in (None, "sh")
            and shaping["_success_exit_codes"] in (None, [0]))


def _grep(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    if args or kwargs.get("interpolate_variables") or not set(kwargs) <= {
            "path", "pattern", "interpolate_variables", "extended_regex"}:
        return None
    path, pattern = kwargs.get("path"), kwargs.get("pattern")
    if not (isinstance(path, str) and path.startswith("/") and isinstance(pattern, str)):
        return None
    return {"grep": [path, pattern]}


def _path(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if args and not kwargs and len(args) == 1:
        path = args[0]
    elif not args and list(kwargs) == ["path"]:
        path = kwargs["path"]
    else:
        return None
    return path if isinstance(path, str) and path.startswith("/") else None
