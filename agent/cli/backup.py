"""`opsagent backup list|restore POLICY`: a backup policy's archives, and restoring one.

Both run borg on the backed-up host, with the policy's repository and passphrase, so
nothing needs setting up by hand. A restore goes into a new or empty folder on that
host (never over live files), takes the host's lock and is written to the audit log.

  opsagent backup list etc-and-home --host web1
  opsagent backup restore etc-and-home --archive latest --to /srv/restore --path /etc/hosts
"""

from __future__ import annotations

import argparse
import json
import sys

from agent.cli.common import Parser, add_arguments, add_state_dir, load_plan, report_problems
from agent.cli.shown import shown
from agent.errors import Problems
from agent.kinds.backup.actions import list_archives, listing_lines, restore, restore_problem
from agent.plan import PolicyRef, RunPlan


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    args.policy, args.limit = [args.name], [args.host] if args.host else None
    try:
        plan = load_plan(args)
    except Problems as e:
        return report_problems(e)
    ref = next(p for p in plan.policies if p.name == args.name)
    if ref.kind != "backup":
        print(f"opsagent backup: policy {args.name!r} is a {ref.kind} policy, not backup",
              file=sys.stderr)
        return 1
    if args.verb == "restore":
        return _restore(args, plan, ref)
    return _list(args, plan, ref)


def _parser() -> Parser:
    parser = Parser(prog="opsagent backup", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    listing = verbs.add_parser("list", help="the archives of each host the policy backs up")
    restore = verbs.add_parser("restore", help="extract an archive into a folder on its host")
    for sub in (listing, restore):
        sub.add_argument("name", metavar="POLICY", help="the backup policy's name")
        sub.add_argument("--host", help="only this host (restore: required when the policy "
                                        "backs up more than one)")
        add_arguments(sub, selection=False)
        add_state_dir(sub)
        sub.add_argument("--timeout", type=int, default=10, help="connect timeout in seconds")
    listing.add_argument("--json", action="store_true", help="print the archives as JSON")
    restore.add_argument("--archive", default="latest",
                         help="an archive name, or latest (default): the host's newest")
    restore.add_argument("--to", required=True, help="a new or empty folder on the host")
    restore.add_argument("--path", dest="paths_in_archive", action="append", default=[],
                         metavar="PATH", help="only this path, as backed up, e.g. /etc/hosts "
                                              "(repeatable; default: everything)")
    return parser


def _list(args: argparse.Namespace, plan: RunPlan, ref: PolicyRef) -> int:
    listing = list_archives(plan, ref, args.timeout)
    for host, error in listing.errors.items():
        print(shown(f"{host}: {error}"), file=sys.stderr)
    if args.json:
        print(json.dumps(listing.archives, indent=2))
    else:
        for line in listing_lines(listing.archives):
            print(line)
    return 2 if listing.errors else 0


def _restore(args: argparse.Namespace, plan: RunPlan, ref: PolicyRef) -> int:
    from agent.state.store import state_dir

    problem = restore_problem(plan, args.name, args.to, "with --host")
    if problem:
        print(f"opsagent backup restore: {problem}", file=sys.stderr)
        return 1
    done = restore(plan, ref, args.archive, args.to, args.paths_in_archive,
                   state_dir(args.state_dir), args.timeout)
    if done.error:
        print(shown(f"{done.host}: {done.error}"), file=sys.stderr)
        return 2
    print(f"{done.host}: restored {done.archive} from {done.repository} into {done.to}")
    return 0
