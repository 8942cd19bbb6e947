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

from agent.cli.common import Parser, add_state_dir, inventory_of, report_problems
from agent.cli.output import Printer
from agent.cli.shown import shown
from agent.errors import Problems
from agent.kinds.backup import actions
from agent.playbook.model import ListAction, RestoreAction
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
    add_state_dir(parser)
    args = parser.parse_args(argv)
    try:
        inventory, source = inventory_of(args)
        book = prepare(args.playbook, args.overrides, inventory, source, args.templates)
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
        if isinstance(step.args, ListAction):
            ok = _list(step, args)
        elif isinstance(step.args, RestoreAction):
            ok = _restore(step, step.args, args, state, book.name)
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


def _list(step: PlaybookStep, args: argparse.Namespace) -> bool:
    listing = actions.list_archives(step.plan, step.ref, args.timeout)
    for line in actions.listing_lines(listing.archives):
        print(f"  {line}")
    for host, error in listing.errors.items():
        print(shown(f"  {host}: {error}"), file=sys.stderr)
    return not listing.errors


def _restore(step: PlaybookStep, todo: RestoreAction, args: argparse.Namespace, state: Path,
             name: str) -> bool:
    [host_plan] = step.plan.hosts
    repository = actions.spec_of(host_plan, step.ref).repository
    only = f" (only {' '.join(todo.paths)})" if todo.paths else ""
    if args.check:
        print(f"  {host_plan.host.name}: would restore {todo.archive} from {repository} into "
              f"{todo.to}{only}")
        return True
    done = actions.restore(step.plan, step.ref, todo.archive, todo.to, todo.paths, state,
                           args.timeout, command=f"playbook {name}")
    if done.error:
        print(shown(f"  {done.host}: {done.error}"), file=sys.stderr)
        return False
    print(f"  {done.host}: restored {done.archive} from {done.repository} into {done.to}{only}")
    return True


def _operation(step: PlaybookStep, args: argparse.Namespace, state: Path, name: str) -> bool:
    from agent.engine.run import execute
    from agent.state.locks import host_locks
    from agent.state.store import Store

    printer = Printer(diff=args.check)
    hosts = [] if args.check else [hp.host.name for hp in step.plan.hosts]
    with host_locks(state, hosts, f"opsagent playbook {name}", 300):
        result = execute(step.plan, check=args.check, diff=args.check,
                         connect_timeout=args.timeout, on_result=printer.progress)
    for host in result.hosts:
        if host.unreachable or host.error:
            print(shown(f"  {host.host}: {host.error or 'unreachable'}"), file=sys.stderr)
        for op in host.ops:
            for line in op.stdout.splitlines():
                print(f"    {shown(line)}")
    with Store(state) as store:
        store.record(result, command=f"playbook {name}", source=step.plan.source,
                     modes={name: "enforce"})
    return not result.failed

