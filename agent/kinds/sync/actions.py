"""The sync kind's verb: `opsagent sync rollback POLICY --run RUN [--repo R]`, and the
playbook step sync.rollback.

It puts every remote's branches back where run RUN found them, from the heads that run
saved before it pushed (refs/opsagent/backup/RUN/ in the host's work mirror). Each push
is leased on the head the sync left there, so a branch a developer moved since is not
overwritten but reported. The heads a rollback replaces are saved in turn, so it can be
rolled back too. As an action that changes hosts it takes the host's lock and is
recorded in the run history and the audit log (the run service does that).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.core.hosts import HostInfo
from agent.core.results import HostResult, Status
from agent.core.steps import Sequence, Step
from agent.kinds.contract import Action, Outcome
from agent.kinds.sync.plan import rollback
from agent.kinds.sync.spec import SyncSpec

ROLLBACK = "rollback"
_RUN = re.compile(r"^\d{8}T\d{6}Z$")


class RollbackArgs(BaseModel):
    """sync rollback: put the remotes back as a run found them."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(description="The run whose pushes to undo, as its output named it "
                     "(replaced heads are saved as run RUN).", examples=["20261203T114711Z"])
    repo: str | None = Field(None, description="Only this repository; default: every one of "
                             "the policy's.", examples=["api"])


def _repos(spec: SyncSpec, args: RollbackArgs) -> list[str]:
    return [args.repo] if args.repo else list(spec.repositories)


def _run(spec: SyncSpec, host: HostInfo, args: RollbackArgs) -> list[Step | Sequence]:
    return rollback(spec, _repos(spec, args), args.run)


def _outcome(spec: SyncSpec, host: HostInfo, args: RollbackArgs, result: HostResult) -> Outcome:
    lines = []
    for op in result.ops:
        done = [line for line in op.stdout.splitlines() if not line.startswith("SUMMARY ")]
        lines += [f"{host.name}: {op.name}: {line}" for line in done]
        if op.status is Status.FAILED:
            lines.append(f"{host.name}: {op.name}: {op.error}")
    ok = all(op.status is not Status.FAILED for op in result.ops)
    return Outcome(ok, tuple(lines), {"run": args.run, "repositories": _repos(spec, args)})


def _preview(spec: SyncSpec, host: HostInfo, args: RollbackArgs) -> str:
    return (f"{host.name}: would put back the heads run {args.run} replaced in "
            f"{', '.join(_repos(spec, args))}")


def _problem(args: RollbackArgs) -> tuple[str, str]:
    if not _RUN.match(args.run):
        return "run", f"{args.run!r}: expected a run as its output named it, e.g. 20261203T114711Z"
    return "", ""


ACTIONS: dict[str, Action[SyncSpec, Any]] = {
    ROLLBACK: Action(ROLLBACK, "put the remotes back as a sync run found them", RollbackArgs,
                     run=_run, outcome=_outcome, preview=_preview, changes=True,
                     problem=_problem),
}
