"""The backup kind's verbs: `opsagent backup list|restore POLICY`, and playbook steps
backup.list and backup.restore.

Both run borg on the backed-up host with the policy's own repository and passphrase.
A restore goes into a new or empty folder on that host (never over live files); as an
action that changes hosts it takes the host's lock and is recorded in the run history
and the audit log (the run service does that).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.core.hosts import HostInfo
from agent.core.results import HostResult
from agent.core.steps import Command, Sequence, Step
from agent.kinds.backup.plan import borg_for, secret_env
from agent.kinds.backup.spec import BackupSpec
from agent.kinds.contract import Action, Outcome

LIST = "list"
RESTORE = "restore"


class ListArgs(BaseModel):
    """backup list: the archives of each host a backup policy backs up."""

    model_config = ConfigDict(extra="forbid")


class RestoreArgs(BaseModel):
    """backup restore: extract an archive into a new or empty folder on its host."""

    model_config = ConfigDict(extra="forbid")

    archive: str = Field("latest", description="An archive name, or latest: the host's newest.",
                         examples=["latest"])
    to: str = Field(description="An absolute, new or empty folder on the host.",
                    examples=["/srv/restore"])
    paths: list[str] = Field(default_factory=list, description="Only these paths as backed up "
                             "(a list, or one string of space-separated paths); empty: all.",
                             examples=[["/etc/hosts"]], json_schema_extra={"flag": "--path"})

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value


def _one(spec: BackupSpec, host: HostInfo, make: Any) -> list[Step | Sequence]:
    borg = borg_for(spec, host)
    command: Command = make(borg)
    return [Sequence(command.name, (command,), borg.env(), secret_env(spec))]


def _list_run(spec: BackupSpec, host: HostInfo, args: ListArgs) -> list[Step | Sequence]:
    return _one(spec, host, lambda borg: Command(
        "list archives", borg.archives(), check=borg.archives(), effect="ok", secrets=True,
        id=LIST))


def _list_outcome(spec: BackupSpec, host: HostInfo, args: ListArgs,
                  result: HostResult) -> Outcome:
    archives = json.loads(result.ops[0].stdout)["archives"]
    lines = [f"{host.name}: {len(archives)} archive{'s' if len(archives) != 1 else ''}"]
    lines += [f"  {a['name']:<40} {a['time'][:19].replace('T', ' ')}" for a in archives]
    return Outcome(True, tuple(lines), archives)


def _only(args: RestoreArgs) -> str:
    return f" (only {' '.join(args.paths)})" if args.paths else ""


def _restore_run(spec: BackupSpec, host: HostInfo, args: RestoreArgs) -> list[Step | Sequence]:
    return _one(spec, host, lambda borg: Command(
        f"restore {args.archive} to {args.to}", borg.extract(args.archive, args.to, args.paths),
        effect="changed", secrets=True, id=RESTORE))


def _restore_outcome(spec: BackupSpec, host: HostInfo, args: RestoreArgs,
                     result: HostResult) -> Outcome:
    archive = result.ops[0].stdout.strip().splitlines()[0]
    return Outcome(True, (f"{host.name}: restored {archive} from {spec.repository} into "
                          f"{args.to}{_only(args)}",), {"archive": archive, "to": args.to})


def _restore_preview(spec: BackupSpec, host: HostInfo, args: RestoreArgs) -> str:
    return (f"{host.name}: would restore {args.archive} from {spec.repository} into "
            f"{args.to}{_only(args)}")


def _restore_problem(args: RestoreArgs) -> tuple[str, str]:
    if not args.to.startswith("/"):
        return "to", f"{args.to}: expected an absolute folder on the host"
    return "", ""


ACTIONS: dict[str, Action[BackupSpec, Any]] = {
    LIST: Action(LIST, "the archives of each host the policy backs up", ListArgs,
                 run=_list_run, outcome=_list_outcome),
    RESTORE: Action(RESTORE, "extract an archive into a new or empty folder on its host",
                    RestoreArgs, run=_restore_run, outcome=_restore_outcome,
                    preview=_restore_preview, changes=True, one_host=True,
                    problem=_restore_problem),
}
