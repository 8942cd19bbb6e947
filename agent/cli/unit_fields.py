"""Values made safe for systemd unit files, or refused, before any is written.

A value with a newline would start a directive of its own (`hourly\\nExecStartPre=...`);
in a command line `%` is a specifier and `$` an environment variable, and spaces split
words. So: control characters are refused everywhere; command lines are written word by
word, quoted where needed, with `%` as `%%` and `$` as `$$` (systemd.service(5),
"Command lines"); other fields must match what systemd accepts for them.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
_CALENDAR = re.compile(r"^[A-Za-z0-9 *:,./~+-]+$")  # weekdays, dates, times, hourly, ...
_TIMESPAN = re.compile(r"^[0-9]+ ?[a-z]*( [0-9]+ ?[a-z]*)*$")  # 5min, 1h 30min, 90
_USER = re.compile(r"^([a-z_][a-z0-9_-]{0,31}|[0-9]+)$")


class UnitFieldError(ValueError):
    pass


def _text(field: str, value: str) -> str:
    if _CONTROL.search(value):
        raise UnitFieldError(f"{field}: {value!r} holds a control character (a newline would "
                             "start a unit directive of its own)")
    return value


def command_line(field: str, words: list[str]) -> str:
    """An ExecStart= value that runs exactly these words."""
    out = []
    for word in words:
        word = _text(field, word).replace("%", "%%").replace("$", "$$")
        if not _PLAIN.match(word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(word)
    return " ".join(out)


def absolute_path(field: str, value: str) -> str:
    if not _text(field, value).startswith("/"):
        raise UnitFieldError(f"{field}: {value!r} is not an absolute path")
    return value


def calendar(field: str, value: str) -> str:
    if not _CALENDAR.match(_text(field, value)):
        raise UnitFieldError(f"{field}: {value!r} is not a systemd calendar event (e.g. hourly, "
                             "daily, *-*-* 04:00:00)")
    return value


def timespan(field: str, value: str) -> str:
    if not _TIMESPAN.match(_text(field, value)):
        raise UnitFieldError(f"{field}: {value!r} is not a systemd time span (e.g. 5min, 1h)")
    return value


def user(field: str, value: str) -> str:
    if not _USER.match(_text(field, value)):
        raise UnitFieldError(f"{field}: {value!r} is not a user name")
    return value


def writable_by_others(path: Path) -> list[str]:
    """Why code at path could be changed by someone other than root: each file or folder
    from it up to / that another user owns or that group or others may write."""
    found = []
    for part in [path, *path.parents]:
        try:
            info = part.stat()
        except OSError:
            continue
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_uid != 0:
            found.append(f"{part} is owned by uid {info.st_uid}")
        elif writable and not sticky:
            found.append(f"{part} is writable by {'others' if info.st_mode & stat.S_IWOTH else 'its group'}")
    return found


def code_paths(words: list[str]) -> list[Path]:
    """What a service running these words executes: the program (links resolved), the
    interpreter its #! line names, and the agent package it imports."""
    import agent

    paths = [Path(agent.__file__).resolve().parent]
    program = Path(words[0])
    if program.is_absolute():
        paths.insert(0, program.resolve())
        try:
            with program.open("rb") as f:
                first = f.readline(256)
        except OSError:
            first = b""
        if first.startswith(b"#!"):
            interpreter = first[2:].split()
            if interpreter and interpreter[0].startswith(b"/"):
                paths.insert(1, Path(interpreter[0].decode(errors="replace")).resolve())
    return paths
