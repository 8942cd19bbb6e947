"""`opsagent KIND VERB POLICY [options]`: a kind's action, from the registry.

  opsagent backup list etc-and-home --host web1
  opsagent backup restore etc-and-home --archive latest --to /srv/restore --path /etc/hosts

Each action's own options come from its argument model (`opsagent KIND VERB --help`).
An action that changes hosts locks them and is recorded in the history and the audit
log; with --check it says what it would do. Exit 0 done, 1 bad input, 2 a host failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.cli.common import Parser, add_arguments, add_state_dir, load_plan, report_problems
from agent.cli.shown import shown
from agent.errors import Problems
from agent.kinds.contract import Action, Kind


def main(kind: Kind[Any], argv: list[str]) -> int:
    from agent.actions import Call

    parser = _parser(kind)
    args = parser.parse_args(argv)
    action = kind.actions[args.verb]
    prog = f"opsagent {kind.name} {action.verb}"
    try:
        checked = action.Args.model_validate(
            {name: getattr(args, f"arg_{name}") for name in action.Args.model_fields
             if getattr(args, f"arg_{name}") is not None})
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"])
            print(f"{prog}: {_flag(action, where)}: {err['msg']}", file=sys.stderr)
        return 1
    args.policy, args.limit = [args.name], [args.host] if args.host else None
    try:
        plan = load_plan(args, read_facts=True)
    except Problems as e:
        return report_problems(e)
    ref = next(p for p in plan.policies if p.name == args.name)
    if ref.kind != kind.name:
        print(f"opsagent {kind.name}: policy {args.name!r} is a {ref.kind} policy, not "
              f"{kind.name}", file=sys.stderr)
        return 1
    call = Call(kind, action, plan, ref, checked)
    _, why = call.problem("with --host")
    if why:
        print(f"{prog}: {why}", file=sys.stderr)
        return 1
    from agent.state.store import state_dir

    outcomes, unrecorded = call.run(state_dir(args.state_dir), call.label, check=args.check,
                                    timeout=args.timeout, lock_wait=args.lock_wait,
                                    audit_syslog=getattr(args, "audit_syslog", None))
    for outcome in outcomes:
        if not outcome.ok or not args.json:
            for line in outcome.lines:
                print(shown(line), file=sys.stdout if outcome.ok else sys.stderr)
    if args.json:
        data = {hp.host.name: o.data for hp, o in zip(plan.hosts, outcomes, strict=True) if o.ok}
        print(json.dumps(data, indent=2))
    if unrecorded:
        print(f"opsagent: could not record this run: {unrecorded}", file=sys.stderr)
    return 2 if unrecorded or not all(o.ok for o in outcomes) else 0


def _parser(kind: Kind[Any]) -> Parser:
    parser = Parser(prog=f"opsagent {kind.name}", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb, action in kind.actions.items():
        sub = verbs.add_parser(verb, help=action.help, description=action.Args.__doc__)
        sub.add_argument("name", metavar="POLICY", help=f"the {kind.name} policy's name")
        one = " (required when the policy has more than one)" if action.one_host else ""
        sub.add_argument("--host", help=f"only this host{one}")
        add_arguments(sub, selection=False)
        add_state_dir(sub)
        sub.add_argument("--timeout", type=int, default=10, help="connect timeout in seconds")
        sub.add_argument("--json", action="store_true", help="print what each host gave as JSON")
        if action.changes:
            sub.add_argument("--check", action="store_true", help="say what it would do; "
                             "change nothing")
            sub.add_argument("--lock-wait", type=int, default=300, metavar="SECONDS",
                             help="wait this long for hosts another run holds (default: 300)")
            sub.add_argument("--audit-syslog", metavar="SOCKET", help="also send each audit "
                             "entry to this syslog socket (default: opsagent.yml's audit_syslog)")
        sub.set_defaults(check=False, lock_wait=300)
        _options(sub, action.Args)
    return parser


def _options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One --option per field of the action's arguments."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = str(extra.get("flag", "--" + name.replace("_", "-")))
        text = info.description or ""
        if not info.is_required():
            default = info.get_default(call_default_factory=True)
            if default not in (None, [], ""):
                text += f" (default: {default})"
        many = typing.get_origin(info.annotation) is list
        parser.add_argument(flag, dest=f"arg_{name}", action="append" if many else "store",
                            metavar=flag.lstrip("-").upper().replace("-", "_"),
                            required=info.is_required(), default=None,
                            help=text + (" (repeatable)" if many else ""))


def _flag(action: Action[Any, Any], name: str) -> str:
    info = action.Args.model_fields.get(name)
    extra = info.json_schema_extra if info and isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get("flag", "--" + name.replace("_", "-")))
