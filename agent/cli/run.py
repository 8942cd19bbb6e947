"""`opsagent run PLAYBOOK`: a one-shot procedure, its steps in order.

The whole playbook is checked first (variables, every step's arguments, the policies
and hosts it names); nothing runs until all of it is right. The first step that fails
stops the playbook. With --check, reading steps run, changing ones say what they would do.

  opsagent run playbooks/restore.yml -e policy=etc-and-home -e host=web1 -e to=/srv/restore
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.actions import Call
from agent.cli.common import Parser, add_state_dir, gather_facts, inventory_of, report_problems
from agent.cli.output import Printer
from agent.cli.shown import shown
from agent.errors import Problems
from agent.playbook.prepare import PlaybookStep, PreparedPlaybook, prepare


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent run", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("playbook", type=Path, help="a playbook file, e.g. playbooks/restore.yml")
    parser.add_argument("-e", "--extra-var", dest="overrides", action="append", default=[],
                        metavar="NAME=VALUE", help="set one of the playbook's vars (repeatable)")
    parser.add_argument("-i", "--inventory", type=Path,
                        help="inventory file, or @local (default: inventories/local.yml if "
                             "present, else @local)")
    parser.add_argument("--templates", type=Path, default=None,
                        help="where relative template sources are found (default: templates/)")
    parser.add_argument("--check", action="store_true",
                        help="run reading steps only; say what changing steps would do")
    parser.add_argument("--timeout", type=int, default=10, help="connect timeout in seconds")
    parser.add_argument("--lock-wait", type=int, default=300, metavar="SECONDS",
                        help="wait this long for hosts another run holds (default: 300)")
    parser.add_argument("--audit-syslog", metavar="SOCKET", help="also send each audit entry "
                        "to this syslog socket (default: opsagent.yml's audit_syslog)")
    add_state_dir(parser)
    args = parser.parse_args(argv)
    try:
        inventory, source = inventory_of(args)
        book = prepare(args.playbook, args.overrides, inventory, source, args.templates,
                       gather_facts(args.timeout))
    except Problems as e:
        return report_problems(e)
    return _run(book, args)


def _run(book: PreparedPlaybook, args: argparse.Namespace) -> int:
    from agent.state.store import state_dir

    state = state_dir(args.state_dir)
    about = f": {book.description}" if book.description else ""
    print(f"playbook {book.name}{about}{' (check mode)' if args.check else ''}")
    total = len(book.steps)
    for number, step in enumerate(book.steps, 1):
        print(f"[{number}/{total}] {step.title}", flush=True)
        if step.call is not None:
            ok = _action(step.call, args, state, book.name)
        else:
            ok = _operation(step, args, state, book.name)
        if not ok:
            left = total - number
            rest = f"; the {left} step{'s' if left != 1 else ''} after it did not run" if left else ""
            print(f"playbook {book.name}: step {number} ({step.title}) failed{rest}",
                  file=sys.stderr)
            return 2
    done = "checked; nothing was changed" if args.check else "done"
    print(f"playbook {book.name}: {total} step{'s' if total != 1 else ''} {done}")
    return 0


def _action(call: Call, args: argparse.Namespace, state: Path, name: str) -> bool:
    outcomes, unrecorded = call.run(state, f"playbook {name}", check=args.check,
                                    timeout=args.timeout, lock_wait=args.lock_wait,
                                    audit_syslog=args.audit_syslog)
    for outcome in outcomes:
        for line in outcome.lines:
            print(shown(f"  {line}"), file=sys.stdout if outcome.ok else sys.stderr)
    if unrecorded:
        print(f"  opsagent: could not record this step: {unrecorded}", file=sys.stderr)
    return not unrecorded and all(o.ok for o in outcomes)


def _operation(step: PlaybookStep, args: argparse.Namespace, state: Path, name: str) -> bool:
    from agent import runs
    from agent.state.store import Store

    printer = Printer(diff=args.check)
    with Store(state) as store:
        done = runs.run(step.plan, store, f"playbook {name}", check=args.check, diff=args.check,
                        connect_timeout=args.timeout, lock_wait=args.lock_wait,
                        on_result=printer.progress, on_wave=printer.line,
                        modes={name: "enforce"}, audit_syslog=args.audit_syslog)
    for host in done.result.hosts:
        if host.unreachable or host.error:
            print(shown(f"  {host.host}: {host.error or 'unreachable'}"), file=sys.stderr)
        for op in host.ops:
            for line in op.stdout.splitlines():
                print(f"    {shown(line)}")
    if done.error:
        print(f"  opsagent: could not record this step: {done.error}", file=sys.stderr)
    return not done.result.failed and not done.error
