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
import time
from typing import Any

from agent.cli.common import Parser, add_arguments, add_state_dir, load_plan, open_store, report_problems
from agent.errors import Problems
from agent.kinds.backup import borg_for, secret_env
from agent.kinds.backup.spec import BackupSpec
from agent.kinds.base import Command, Sequence
from agent.plan import HostPlan, PlannedStep, PolicyRef, RunPlan


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


def _spec(host_plan: HostPlan, ref: PolicyRef) -> BackupSpec:
    spec = next(s for r, s in host_plan.specs if r == ref)
    assert isinstance(spec, BackupSpec)
    return spec


def _one_command(plan: RunPlan, ref: PolicyRef, make: Any) -> RunPlan:
    """The plan's hosts, each with one command made from its own spec."""
    hosts = []
    for host_plan in plan.hosts:
        spec = _spec(host_plan, ref)
        borg = borg_for(spec, host_plan.host.info)
        command: Command = make(borg)
        sequence = Sequence(command.name, (command,), borg.env(), secret_env(spec))
        hosts.append(HostPlan(host_plan.host, (PlannedStep(ref, sequence),), host_plan.specs))
    return RunPlan(tuple(hosts), (ref,), plan.source)


def _list(args: argparse.Namespace, plan: RunPlan, ref: PolicyRef) -> int:
    from agent.engine.run import execute

    def make(borg: Any) -> Command:
        return Command("list archives", borg.archives(), check=borg.archives(), effect="ok",
                       secrets=True)

    result = execute(_one_command(plan, ref, make), check=True, connect_timeout=args.timeout)
    found: dict[str, list[dict[str, Any]]] = {}
    code = 0
    for host in result.hosts:
        op = host.ops[0]
        if host.unreachable or op.error:
            print(f"{host.host}: {host.error or op.error}", file=sys.stderr)
            code = 2
            continue
        found[host.host] = json.loads(op.stdout)["archives"]
    if args.json:
        print(json.dumps(found, indent=2))
        return code
    for name, archives in found.items():
        print(f"{name}: {len(archives)} archive{'s' if len(archives) != 1 else ''}")
        for archive in archives:
            print(f"  {archive['name']:<40} {archive['time'][:19].replace('T', ' ')}")
    return code


def _restore(args: argparse.Namespace, plan: RunPlan, ref: PolicyRef) -> int:
    from agent.engine.run import execute
    from agent.state.locks import host_locks
    from agent.state.store import state_dir

    names = [hp.host.name for hp in plan.hosts]
    if len(names) != 1:
        print(f"opsagent backup restore: policy {args.name!r} backs up {', '.join(names)}; "
              "choose one with --host", file=sys.stderr)
        return 1
    if not args.to.startswith("/"):
        print(f"opsagent backup restore: --to {args.to}: expected an absolute folder on the "
              "host", file=sys.stderr)
        return 1

    def make(borg: Any) -> Command:
        return Command(f"restore {args.archive} to {args.to}",
                       borg.extract(args.archive, args.to, args.paths_in_archive),
                       effect="changed", secrets=True)

    started = time.time()
    with host_locks(state_dir(args.state_dir), names, "opsagent backup restore", 300):
        result = execute(_one_command(plan, ref, make), check=False,
                         connect_timeout=args.timeout)
    host = result.hosts[0]
    op = host.ops[0]
    with open_store(args) as store:
        store.record(result, command="restore", source=plan.source, started=started)
    if host.unreachable or op.error:
        print(f"{host.host}: {host.error or op.error}", file=sys.stderr)
        return 2
    archive = op.stdout.strip().splitlines()[0]
    repository = _spec(plan.hosts[0], ref).repository
    print(f"{host.host}: restored {archive} from {repository} into {args.to}")
    return 0
