"""Who a record says made a run: what the kernel says of this process, not what its
environment claims.

The user is the real uid's name. The login uid (set by pam_loginuid at login, kept
through sudo and su, unset for services) names the person behind it when it differs.
The daemon marks its runs with OPSAGENT_TRIGGER="opsagent daemon (pid N)"; any caller can
set that, so it is believed only when N is this process, its parent, or its parent's
parent through the daemon's fork server, and even then the uids above are still said: a
person who fakes it is named by their login. A command a warm server (`opsagent warm`)
runs for a caller is named by the caller's login uid, which the server reads from the
kernel for the caller's process (SO_PEERCRED), not by the server's own.
"""

from __future__ import annotations

import os
import pwd
import re

UNSET = 4294967295  # (uid_t)-1: no login uid
_TRIGGER = re.compile(r"opsagent daemon \(pid (\d+)\)")


def name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


_caller: list[int | None] = []  # set by a warm server's child: the caller's login uid


def as_caller(login: int | None) -> None:
    """In a warm server's child: the login uid is the caller's, as the server read it."""
    _caller[:] = [login]


def login_uid(pid: int | str = "self") -> int | None:
    if _caller and pid == "self":
        return _caller[0]
    try:
        with open(f"/proc/{pid}/loginuid") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if value == UNSET else value


def trigger() -> str:
    claimed = os.environ.get("OPSAGENT_TRIGGER", "")
    match = _TRIGGER.fullmatch(claimed)
    if match and int(match.group(1)) in (os.getpid(), os.getppid(), _server_parent()):
        return claimed
    return ""


def _server_parent() -> int | None:
    """The daemon, for a run its fork server forked: the parent's parent, when the parent
    is `python -m agent.daemon.forkserver` (which only the daemon starts)."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    if argv[1:3] != [b"-m", b"agent.daemon.forkserver"]:
        return None
    return parent(ppid)


def parent(pid: int) -> int | None:
    """The parent process of pid, from /proc (None when pid is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def who(asked_by: str = "") -> str:
    """This process's user (and login, and the daemon that started it); asked_by (what a
    person asked of this process through the state store, "abort asked by alice") follows."""
    uid = os.getuid()
    login = login_uid()
    text = name(uid) if login is None or login == uid else f"{name(uid)} (login {name(login)})"
    started_by = trigger()
    text = f"{text} via {started_by}" if started_by else text
    return f"{text}, {asked_by}" if asked_by else text
