"""`opsagent apply`: converge hosts now and print a recap; exit 0 converged, 2 failures."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from agent.cli.common import Parser, add_arguments, add_state_dir, load_plan, open_store, report_problems
from agent.cli.output import Printer, exit_code, to_json
from agent.errors import Problems
from agent.state.store import StateError


def main(argv: list[str], check: bool = False) -> int:
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
    args = parser.parse_args(argv)
    check = check or args.check
    try:
        plan = load_plan(args)
    except Problems as e:
        return report_problems(e)

    from agent.engine.run import execute

    printer = Printer(diff=args.diff)
    result = execute(plan, check=check, diff=args.diff or check, connect_timeout=args.timeout,
                     on_result=None if args.json else printer.progress)
    if args.json:
        print(to_json(result))
    else:
        printer.recap(result)
    try:
        with open_store(args) as store:
            store.record(result, command="plan" if check else "apply", source=plan.source)
    except (StateError, sqlite3.Error) as e:
        print(f"opsagent: could not record this run: {e}", file=sys.stderr)
        return 1
    return exit_code(result)


def _seconds(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds from 1 to 3600")
    return int(text)
