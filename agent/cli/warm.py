"""`opsagent warm`: keep a process with pyinfra, gevent and the kinds imported, so that
this user's one-shot commands (apply, plan, validate, run, facts, deploy, a kind's
actions) start in under 0.1 s instead of about 0.4 s.

Runs in the foreground until --idle passes without a command, or SIGTERM or Ctrl-C;
start it with `&`, from a user unit, or at login. A command finds it at
$OPSAGENT_WARM_SOCKET, else $XDG_RUNTIME_DIR/opsagent/warm.sock, else
~/.cache/opsagent/warm.sock, and runs cold when no server answers there (or when
OPSAGENT_COLD is set). A command runs on your terminal, in your folder, environment and
umask, and Ctrl-C reaches it; it shares the server's limits, cgroup and namespaces, so
start the server where you run opsagent. Only this user may reach the server; the audit
log names the caller's login, not the server's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import Parser
from agent.core.durations import parse_duration


def main(argv: list[str]) -> int:
    from agent.warm.client import socket_path

    parser = Parser(prog="opsagent warm", description=__doc__)
    parser.add_argument("--idle", type=_duration, default=1800, metavar="DURATION",
                        help="end after this long without a command, e.g. 30m, 8h "
                             "(default: 30m)")
    parser.add_argument("--socket", type=Path, default=None, metavar="PATH",
                        help=f"where to listen (default: {socket_path()})")
    args = parser.parse_args(argv)
    from agent.warm import server

    return server.run(args.socket or socket_path(), args.idle)


def _duration(text: str) -> int:
    try:
        seconds = parse_duration(int(text) if text.isdigit() else text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1s")
    return seconds
