"""Reads a round of facts on the target host; prefetch sends this file's source.

Standard library only. Reads one JSON line on stdin, a list of requests, and prints one
JSON line per request, in order: {"rc", "stdout", "stderr"} as `sh -c` run alone would
give them ({"rc", "undecodable": true} for output that is not UTF-8).

A request is a fact's command line, run as pyinfra would run it, or an object holding
that command and a native way to the same answer: {"command", "stat": path} for
pyinfra's File, Directory and Link facts (one `stat -c ...` line), {"command", "sha1":
path} for Sha1File (one `sha1sum` line), {"command", "grep": [path, pattern]} for
FindInFile (grep's matching lines, or pyinfra's "exists" marker). A native answer prints
exactly what the command prints, or the command runs: for a path or link target that
GNU stat would quote other than as '...', a user or group without a name, an error other
than "no such file", a file that is not a regular file (or, for grep, one that is not
there or is not UTF-8 text), a pattern that is more than text between anchors, or a host
without GNU stat and sha1sum. A `stat` of a
small regular file also hands back its SHA-1 ("sha1"): the Sha1File that files.put and
files.template read next is then known without another round.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys

TYPE_CHECKING = False  # typing costs the host 5 ms to import: for mypy only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SMALL = 1 << 20  # bytes: a file up to this size has its SHA-1 sent with its stat, and a
# line search reads it whole (a larger one is left to grep, which streams it)
# Characters GNU stat's %N (shell-escape-always) prints between plain single quotes.
PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/@%+=:,-")
GONE = (FileNotFoundError, NotADirectoryError)  # `test -e` and `test -L` both say no
SPECIAL = frozenset(".[]*^$\\+?(){}|\n")  # in a grep pattern (basic or extended): not text


class Unsure(Exception):
    """The native way might not print what the command prints: run the command."""


def run(command: str) -> dict[str, Any]:
    argv = shlex.split(command)  # sh -c '...': exec'd as a login shell would, else run by sh
    shell = len(argv) != 3 or argv[1] != "-c"
    done = subprocess.run(command if shell else argv, shell=shell, stdin=subprocess.DEVNULL,
                          capture_output=True)
    try:
        return {"rc": done.returncode, "stdout": done.stdout.decode(),
                "stderr": done.stderr.decode()}
    except UnicodeDecodeError:
        return {"rc": done.returncode, "undecodable": True}


def quoted(path: str) -> str:
    if not path or not set(path) <= PLAIN:
        raise Unsure(path)
    return f"'{path}'"


def examined(how: Callable[[str], os.stat_result], path: str) -> os.stat_result | None:
    """how(path); None where `test -e` (and `test -L`) would say no such file; Unsure for
    any other error (a permission: the command says what it says)."""
    try:
        return how(path)
    except GONE:
        return None
    except OSError as error:
        raise Unsure(path) from error


def stat_line(path: str) -> dict[str, Any]:
    """`! (test -e P || test -L P) || ( stat -c '...' P ... )`, as GNU stat answers."""
    import grp
    import pwd
    import stat

    st = examined(os.lstat, path)
    if st is None:
        return {"rc": 0, "stdout": "", "stderr": ""}
    name = quoted(path)
    if stat.S_ISLNK(st.st_mode):
        name += " -> " + quoted(os.readlink(path))
    try:
        user, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
    except KeyError as error:  # stat prints UNKNOWN
        raise Unsure(path) from error
    line = (f"user={user} group={group} mode={stat.filemode(st.st_mode)} "
            f"atime={st.st_atime_ns // 10**9} mtime={st.st_mtime_ns // 10**9} "
            f"ctime={st.st_ctime_ns // 10**9} size={st.st_size} {name}\n")
    answer: dict[str, Any] = {"rc": 0, "stdout": line, "stderr": ""}
    if stat.S_ISREG(st.st_mode) and st.st_size <= SMALL and usable("sha1"):
        with contextlib.suppress(OSError):
            answer["sha1"] = sha1(path)
    return answer


def sha1_line(path: str) -> dict[str, Any]:
    """`test -e P && ( sha1sum P 2> /dev/null || ... ) || true`, as sha1sum answers."""
    import stat

    quoted(path)  # Unsure for a name sha1sum would print escaped
    st = examined(os.stat, path)
    if st is None:
        return {"rc": 0, "stdout": "", "stderr": ""}
    if not stat.S_ISREG(st.st_mode) or not usable("sha1"):
        raise Unsure(path)
    try:
        return {"rc": 0, "stdout": f"{sha1(path)}  {path}\n", "stderr": ""}
    except OSError as error:
        raise Unsure(path) from error


def grep_lines(request: list[str]) -> dict[str, Any]:
    """`grep -e PATTERN P 2> /dev/null || ( find P -type f > /dev/null && echo
    __pyinfra_exists_P || true )` for a pattern that is text between optional anchors."""
    path, pattern = request
    start, text, end = anchored(pattern)
    quoted(path)
    with open(path, "rb") as file:  # a folder, a missing file: OSError, the command answers
        data = file.read(SMALL + 1)
    if len(data) > SMALL:
        raise Unsure(path)
    data.decode()  # grep calls a file that is not UTF-8 binary: the command answers
    if b"\0" in data:
        raise Unsure(path)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    want = text.encode()
    found = [line for line in lines if (
        line == want if start and end else line.startswith(want) if start
        else line.endswith(want) if end else want in line)]
    if not found:
        return {"rc": 0, "stdout": f"__pyinfra_exists_{path}\n", "stderr": ""}
    return {"rc": 0, "stdout": b"".join(line + b"\n" for line in found).decode(), "stderr": ""}


def anchored(pattern: str) -> tuple[bool, str, bool]:
    """(anchored at the start, the text, anchored at the end); Unsure unless the pattern
    is that (files.line writes ^.*TEXT.*$, or ^TEXT$ for a line given whole)."""
    start = end = False
    if pattern.startswith("^"):
        pattern = pattern[1:]
        if pattern.startswith(".*"):
            pattern = pattern[2:]
        else:
            start = True
    if pattern.endswith("$"):
        pattern = pattern[:-1]
        if pattern.endswith(".*"):
            pattern = pattern[:-2]
        else:
            end = True
    if set(pattern) & SPECIAL:
        raise Unsure(pattern)
    return start, pattern, end


def sha1(path: str) -> str:
    import hashlib

    digest = hashlib.sha1()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def on_path(tool: str) -> bool:
    return any(os.access(os.path.join(d, tool), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep) if d)


def gnu_stat() -> bool:
    """GNU stat, quoting names as it does by default (QUOTING_STYLE unset)."""
    if "QUOTING_STYLE" in os.environ or not on_path("stat"):
        return False
    done = subprocess.run(["stat", "--version"], stdin=subprocess.DEVNULL, capture_output=True)
    return done.returncode == 0 and b"GNU coreutils" in done.stdout


NATIVE: dict[str, Callable[[Any], dict[str, Any]]] = {
    "stat": stat_line, "sha1": sha1_line, "grep": grep_lines}
TOOLS: dict[str, bool] = {}  # a native way: whether the tool its command uses is there


def usable(way: str) -> bool:
    """Whether the tool the command of this way runs is there (asked once)."""
    if way not in TOOLS:
        TOOLS[way] = gnu_stat() if way == "stat" else on_path("sha1sum") if way == "sha1" else True
    return TOOLS[way]


def answer(request: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(request, str):
        return run(request)
    for way, function in NATIVE.items():
        if way in request and usable(way):
            try:
                return function(request[way])
            except Exception:  # Unsure, or anything unforeseen: the command answers
                break
    return run(request["command"])


def main() -> None:
    for request in json.loads(sys.stdin.readline()):
        sys.stdout.write(json.dumps(answer(request)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
