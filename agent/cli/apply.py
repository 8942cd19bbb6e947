"""`opsagent apply`: converge hosts now and print a recap; exit 0 converged, 2 failures.

Hosts are locked in the state directory while they are converged, so this and the
daemon never work on one host at once. SIGTERM lets the operations under way end,
skips the rest, and records the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from types import FrameType

from agent.cli.common import Parser, add_arguments, add_state_dir, load_plan, open_store, report_problems
from agent.cli.output import Printer, exit_code, to_json
from agent.errors import Problems
from agent.state.store import StateError, state_dir


def main(argv: list[str], check: bool = False) -> int:
    stopping = _on_sigterm()  # first: a SIGTERM from here on stops the run cleanly
    prog = "opsagent plan" if check else "opsagent apply"
    parser = Parser(prog=prog, description=__doc__)
    add_arguments(parser)
    parser.add_argument("--diff", action="store_true", help="show file diffs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    parser.add_argument("--timeout", type=_seconds, default=10, metavar="SECONDS",
                        help="a host that does not connect or answer within this is unreachable "
                             "(default: 10)")
    add_state_dir(parser)
    if not check:
        parser.add_argument("--check", action="store_true", help="check mode: same as plan")
        parser.add_argument("--lock-wait", type=_seconds_or_zero, default=300, metavar="SECONDS",
                            help="wait this long for hosts another run is converging (default: 300)")
        parser.add_argument("--textfile-dir", metavar="DIR",
                            help="also write the metrics to DIR/opsagent.prom, for node_exporter's "
                                 "textfile collector")
    args = parser.parse_args(argv)
    check = check or args.check
    textfile_dir = getattr(args, "textfile_dir", None)
    if textfile_dir and not os.path.isdir(textfile_dir):
        parser.error(f"--textfile-dir {textfile_dir}: no such directory")
    try:
        plan = load_plan(args)
    except Problems as e:
        return report_problems(e)

    from agent.engine.run import execute
    from agent.state.locks import host_locks

    printer = Printer(diff=args.diff)
    hosts = [] if check else [hp.host.name for hp in plan.hosts]
    what = f"opsagent {'plan' if check else 'apply'}"
    with host_locks(state_dir(args.state_dir), hosts, what, getattr(args, "lock_wait", 0)):
        result = execute(plan, check=check, diff=args.diff or check, connect_timeout=args.timeout,
                         on_result=None if args.json else printer.progress, stop=stopping)
    if args.json:
        print(to_json(result))
    else:
        printer.recap(result)
    from agent.plan import observe

    try:
        with open_store(args) as store:
            store.record(result, command="plan" if check else "apply", source=plan.source,
                         modes={p.name: p.mode for p in plan.policies},
                         facts=observe(plan, result))
        if textfile_dir:
            from agent.metrics import write_textfile

            write_textfile(store.path, textfile_dir)
    except (StateError, sqlite3.Error, OSError) as e:
        print(f"opsagent: could not record this run: {e}", file=sys.stderr)
        return 1
    return exit_code(result)


def _on_sigterm() -> Callable[[], bool]:
    """A flag raised by the first SIGTERM; the engine asks it before each operation."""
    asked: list[bool] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        asked.append(True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once

    signal.signal(signal.SIGTERM, handler)
    return lambda: bool(asked)


def _seconds(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds from 1 to 3600")
    return int(text)


def _seconds_or_zero(text: str) -> int:
    if not text.isdigit() or int(text) > 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds from 0 to 86400")
    return int(text)
