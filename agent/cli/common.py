"""Options and loading shared by validate, plan and apply."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from agent.errors import Problems
from agent.inventory import LOCAL, Inventory, load_inventory, local
from agent.plan import RunPlan, build_plan
from agent.policy.validate import read_policies
from agent.state.store import Store

DEFAULT_INVENTORY = Path("inventories/local.yml")


class Parser(argparse.ArgumentParser):
    """argparse, but bad usage is bad input: exit 1, as for every other input error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def add_arguments(parser: argparse.ArgumentParser, selection: bool = True) -> None:
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("policies")],
                        help="policy files or directories (default: policies/)")
    parser.add_argument("-i", "--inventory", type=Path,
                        help="inventory file, or @local (default: inventories/local.yml if "
                             "present, else @local)")
    parser.add_argument("--templates", type=Path, default=Path("templates"),
                        help="where relative template and file sources are found "
                             "(default: templates/)")
    if selection:
        parser.add_argument("--limit", action="append", metavar="HOST|GROUP",
                            help="only these hosts or groups (repeatable)")
        parser.add_argument("--policy", action="append", metavar="NAME",
                            help="only the policy with this name (repeatable)")


def inventory_of(args: argparse.Namespace) -> tuple[Inventory, str]:
    path = args.inventory
    if path is None and DEFAULT_INVENTORY.is_file():
        path = DEFAULT_INVENTORY
    if path is None or str(path) == LOCAL:
        return local(), LOCAL
    return load_inventory(path), str(path)


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where run history and the audit log are kept (default: "
                             "$OPSAGENT_STATE_DIR, else /var/lib/opsagent as root, "
                             "else ~/.local/state/opsagent)")


def open_store(args: argparse.Namespace) -> Store:
    from agent.state.store import state_dir

    return Store(state_dir(args.state_dir))


def load_plan(args: argparse.Namespace) -> RunPlan:
    """Policies validated for every targeted host and planned; raises Problems."""
    problems = []
    try:
        inventory, source = inventory_of(args)
    except Problems as e:
        problems.extend(e.problems)
        inventory, source = None, ""
    policies, policy_problems = read_policies(args.paths)
    problems.extend(policy_problems)
    if inventory is None:
        raise Problems(problems)
    try:
        plan = build_plan(policies, inventory, source, args.templates,
                          getattr(args, "limit", None), getattr(args, "policy", None))
    except Problems as e:
        problems.extend(e.problems)
    if problems:
        raise Problems(problems)
    return plan


def report_problems(e: Problems) -> int:
    for problem in e.problems:
        print(problem, file=sys.stderr)
    count = len(e.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was changed on any host.",
          file=sys.stderr)
    return 1
