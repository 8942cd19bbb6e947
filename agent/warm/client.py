"""Hand a command to this user's warm server (`opsagent warm`), when one is up.

Imports only the standard library: it runs before gevent's patches and pyinfra, which
are what a warm server saves. The command runs there, in a child forked for it, on this
process's stdin, stdout and stderr, in its folder, environment and umask; SIGINT, SIGTERM
and SIGHUP sent here are passed on, and its exit status is this process's.

Not handed off (run here, as always): when no server answers, when OPSAGENT_COLD is set,
when the daemon started this process (OPSAGENT_TRIGGER: its runs have a warm parent of
their own), or when the server says it cannot take it (it runs other code, it is
stopping).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

PACKET = 1 << 20  # a request's largest size: args and env
_served: list[bool] = []  # set in a command the server runs: it never hands itself off
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def socket_path() -> Path:
    """$OPSAGENT_WARM_SOCKET, else warm.sock in $XDG_RUNTIME_DIR/opsagent or
    ~/.cache/opsagent."""
    named = os.environ.get("OPSAGENT_WARM_SOCKET")
    if named:
        return Path(named)
    base = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".cache")
    return Path(base) / "opsagent" / "warm.sock"


def source() -> str:
    """Which opsagent this is: a server of another one does not take the command."""
    return f"{sys.executable} {Path(__file__).resolve().parents[1]}"


def served() -> None:
    """In the command a warm server forked: run here, never hand off again."""
    _served.append(True)


def handoff(args: list[str]) -> int | None:
    """The exit code of args run by the warm server; None when it should run here."""
    if _served or os.environ.get("OPSAGENT_COLD") or os.environ.get("OPSAGENT_TRIGGER"):
        return None
    child: list[int] = []
    early: list[int] = []  # signals that came before the child's pid did

    def forward(signum: int, _frame: Any) -> None:
        if child:
            os.kill(child[0], signum)
        else:
            early.append(signum)

    before = {signum: signal.signal(signum, forward) for signum in SIGNALS}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(str(socket_path()))
        umask = os.umask(0o077)
        os.umask(umask)
        request = {"args": args, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask,
                   "source": source()}
        socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
        started = _receive(sock)
    except OSError:  # no server, or a closed stdin or stdout: run here
        started = None
    if started is None or "pid" not in started:
        sock.close()
        for kept, handler in before.items():
            signal.signal(kept, handler)
        for came in early:  # as if they came now, to the command run here
            os.kill(os.getpid(), came)
        return None
    child.append(int(started["pid"]))
    for came in early:
        os.kill(child[0], came)
    return _follow(sock)


def _follow(sock: socket.socket) -> int:
    try:
        ended = _receive(sock)
    except OSError:
        ended = None
    finally:
        sock.close()
    if ended is None or "exit" not in ended:
        sys.stderr.write("opsagent: the warm server ended during the command (see its "
                         "output); its child was stopped\n")
        return 1
    code = int(ended["exit"])
    if code < 0:  # killed by a signal: end the same way, as the command would have
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def _receive(sock: socket.socket) -> dict[str, Any] | None:
    data = sock.recv(PACKET)
    if not data:
        return None
    answer: dict[str, Any] = json.loads(data)
    return answer
