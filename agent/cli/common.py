"""Options and loading shared by validate, plan and apply."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from agent.core.hosts import LOCAL, Host
from agent.core.plans import RunPlan
from agent.errors import Problems
from agent.inventory import Inventory, load_inventory, local
from agent.plan import Gather, build_plan
from agent.policy.validate import read_policies
from agent.project import NAME, Project, load_project

if TYPE_CHECKING:  # imported when a store is opened: validate and plan need none
    from agent.state.store import Store

DEFAULT_INVENTORY = Path("inventories/local.yml")


class Parser(argparse.ArgumentParser):
    """argparse, but bad usage is bad input: exit 1, as for every other input error; and
    what the command line leaves out comes from the project file (opsagent.yml)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        if not any(hasattr(parsed, name) for name in ("paths", "inventory", "templates",
                                                      "state_dir")):
            return parsed  # explain, install-service: nothing the project file sets
        try:
            project, where = load_project()
        except Problems as e:
            self.exit(report_problems(e))
        _fill(parsed, project, where)
        return parsed


def _fill(args: argparse.Namespace, project: Project, where: Path | None) -> None:
    """Defaults in order: the command line, the project file, the built-in ones."""
    if hasattr(args, "paths") and not args.paths:
        args.paths = [Path(p) for p in project.policies or ["policies"]]
    if hasattr(args, "templates") and args.templates is None:
        args.templates = Path(project.templates or "templates")
    if hasattr(args, "state_dir") and args.state_dir is None and project.state_dir \
            and not os.environ.get("OPSAGENT_STATE_DIR"):
        args.state_dir = Path(project.state_dir)
    if hasattr(args, "audit_syslog") and args.audit_syslog is None:
        args.audit_syslog = project.audit_syslog
    if hasattr(args, "inventory"):
        if args.inventory is not None:
            args.inventory_origin = "-i"
        elif project.inventory:
            args.inventory, args.inventory_origin = Path(project.inventory), f"from {where}"
        elif DEFAULT_INVENTORY.is_file():
            args.inventory = DEFAULT_INVENTORY
            args.inventory_origin = f"the default: ./{DEFAULT_INVENTORY} exists"
        else:
            args.inventory_origin = (f"no -i, no {NAME}, no ./{DEFAULT_INVENTORY}: this machine "
                                     "itself")


def add_arguments(parser: argparse.ArgumentParser, selection: bool = True) -> None:
    parser.add_argument("paths", nargs="*", type=Path, default=[],
                        help="policy files or directories (default: opsagent.yml's policies, "
                             "else policies/)")
    parser.add_argument("-i", "--inventory", type=Path,
                        help="inventory file, or @local (default: opsagent.yml's inventory, "
                             "else inventories/local.yml if present, else @local)")
    parser.add_argument("--templates", type=Path, default=None,
                        help="where relative template and file sources are found "
                             "(default: opsagent.yml's templates, else templates/)")
    if selection:
        parser.add_argument("--limit", action="append", metavar="PATTERN",
                            help="only these hosts, as Ansible's patterns: web, web,db, "
                                 "web:!h1, web:&eu, 'h*', '~web\\d+' (repeatable)")
        parser.add_argument("--policy", action="append", metavar="NAME",
                            help="only the policy with this name (repeatable)")
        parser.add_argument("--tags", action="append", metavar="TAG[,TAG]", type=_tag_list,
                            help="only steps with one of these tags (their task's or their "
                                 "policy's; always, never, all, tagged, untagged as Ansible)")
        parser.add_argument("--skip-tags", action="append", metavar="TAG[,TAG]", type=_tag_list,
                            help="leave out steps with one of these tags")


def inventory_of(args: argparse.Namespace) -> tuple[Inventory, str]:
    path = args.inventory  # filled in by Parser from the project file or the defaults
    extra = getattr(args, "extra_vars", None) or {}
    per_host = getattr(args, "host_vars", None) or {}
    if path is None or str(path) == LOCAL:
        return local().with_vars(extra, per_host), LOCAL
    return load_inventory(path).with_vars(extra, per_host), str(path)


def inventory_line(args: argparse.Namespace, plan: RunPlan) -> str:
    """What a plan or apply prints first: which inventory, and why that one."""
    count = len(plan.hosts)
    return (f"inventory: {plan.source} ({getattr(args, 'inventory_origin', '-i')}); "
            f"{count} host{'s' if count != 1 else ''} targeted")


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where run history and the audit log are kept (default: "
                             "$OPSAGENT_STATE_DIR, else opsagent.yml's state_dir, else "
                             "/var/lib/opsagent as root, else ~/.local/state/opsagent)")


def open_store(args: argparse.Namespace) -> Store:
    from agent.state.store import Store, state_dir

    return Store(state_dir(args.state_dir))


def load_plan(args: argparse.Namespace, read_facts: bool = False) -> RunPlan:
    """Policies validated for every targeted host and planned; raises Problems.

    read_facts: read the facts of hosts whose policies use them (else stand-ins)."""
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
                          getattr(args, "limit", None), getattr(args, "policy", None),
                          _flat(getattr(args, "tags", None)),
                          _flat(getattr(args, "skip_tags", None)),
                          gather_facts(getattr(args, "timeout", 10)) if read_facts else None)
    except Problems as e:
        problems.extend(e.problems)
    if problems:
        raise Problems(problems)
    return plan


def gather_facts(timeout: int) -> Gather:
    """What build_plan reads hosts' facts with, for commands that run on hosts."""
    def gather(hosts: list[Host]) -> Mapping[str, Mapping[str, Any] | str]:
        from agent import facts

        return facts.gather(hosts, timeout)

    return gather


def _tag_list(text: str) -> list[str]:
    tags = [t.strip() for t in text.split(",")]
    if not all(tags):
        raise argparse.ArgumentTypeError(f"{text!r}: an empty tag")
    return tags


def _flat(lists: list[list[str]] | None) -> list[str] | None:
    return [t for tags in lists for t in tags] if lists else None


def report_problems(e: Problems) -> int:
    from agent.cli.shown import shown

    for problem in e.problems:
        print(shown(str(problem)), file=sys.stderr)
    count = len(e.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was changed on any host.",
          file=sys.stderr)
    return 1
