"""Listing and restoring a backup policy's archives, for `opsagent backup` and playbooks.

Both run borg on the backed-up host with the policy's own repository and passphrase.
A restore goes into a new or empty folder on that host (never over live files), takes
the host's lock and is recorded in the run history and the audit log.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.engine.results import HostResult
from agent.kinds.backup import borg_for, secret_env
from agent.kinds.backup.borg import Borg
from agent.kinds.backup.spec import BackupSpec
from agent.kinds.base import Command, Sequence
from agent.plan import HostPlan, PlannedStep, PolicyRef, RunPlan


@dataclass
class Listing:
    archives: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # host -> archives
    errors: dict[str, str] = field(default_factory=dict)  # host -> why it could not list


@dataclass(frozen=True)
class Restore:
    host: str
    repository: str
    to: str
    archive: str = ""  # the archive's real name (latest resolved); "" when it failed
    error: str = ""


def listing_lines(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per host: how many archives, then each archive's name and time."""
    lines = []
    for name, archives in found.items():
        lines.append(f"{name}: {len(archives)} archive{'s' if len(archives) != 1 else ''}")
        lines += [f"  {a['name']:<40} {a['time'][:19].replace('T', ' ')}" for a in archives]
    return lines


def restore_problem(plan: RunPlan, name: str, to: str, choose: str) -> str:
    """Why a restore of policy `name` into `to` cannot be tried; "" when it can.

    choose says how to pick a host, e.g. "with --host"."""
    hosts = [hp.host.name for hp in plan.hosts]
    if len(hosts) != 1:
        return f"policy {name!r} backs up {', '.join(hosts)}; choose one {choose}"
    if not to.startswith("/"):
        return f"{to}: expected an absolute folder on the host"
    return ""


def list_archives(plan: RunPlan, ref: PolicyRef, timeout: int) -> Listing:
    from agent.engine.run import execute

    def make(borg: Borg) -> Command:
        return Command("list archives", borg.archives(), check=borg.archives(), effect="ok",
                       secrets=True)

    result = execute(_one_command(plan, ref, make), check=True, connect_timeout=timeout)
    listing = Listing()
    for host in result.hosts:
        error = _failure(host)
        if error:
            listing.errors[host.host] = error
        else:
            listing.archives[host.host] = json.loads(host.ops[0].stdout)["archives"]
    return listing


def restore(
    plan: RunPlan, ref: PolicyRef, archive: str, to: str, paths: list[str], state: Path,
    timeout: int, command: str = "restore",
) -> Restore:
    """Extract `archive` (or the host's newest, for latest) into `to` on the policy's one host."""
    from agent.engine.run import execute
    from agent.state.locks import host_locks
    from agent.state.store import Store

    [host_plan] = plan.hosts
    name = host_plan.host.name
    repository = spec_of(host_plan, ref).repository

    def make(borg: Borg) -> Command:
        return Command(f"restore {archive} to {to}", borg.extract(archive, to, paths),
                       effect="changed", secrets=True)

    started = time.time()
    with host_locks(state, [name], f"opsagent {command}", 300):
        result = execute(_one_command(plan, ref, make), check=False, connect_timeout=timeout)
    with Store(state) as store:
        store.record(result, command=command, source=plan.source, started=started)
    host = result.hosts[0]
    error = _failure(host)
    if error:
        return Restore(name, repository, to, error=error)
    return Restore(name, repository, to, archive=host.ops[0].stdout.strip().splitlines()[0])


def _failure(host: HostResult) -> str:
    """Why the host's one command gave no usable output; "" when it did."""
    op = host.ops[0] if host.ops else None
    if host.unreachable or op is None or op.error:
        return host.error or (op.error if op else "") or "no result"
    return ""


def spec_of(host_plan: HostPlan, ref: PolicyRef) -> BackupSpec:
    spec = next(s for r, s in host_plan.specs if r == ref)
    assert isinstance(spec, BackupSpec)
    return spec


def _one_command(plan: RunPlan, ref: PolicyRef, make: Any) -> RunPlan:
    """The plan's hosts, each with one command made from its own spec."""
    hosts = []
    for host_plan in plan.hosts:
        spec = spec_of(host_plan, ref)
        borg = borg_for(spec, host_plan.host.info)
        command: Command = make(borg)
        sequence = Sequence(command.name, (command,), borg.env(), secret_env(spec))
        hosts.append(HostPlan(host_plan.host, (PlannedStep(ref, sequence),), host_plan.specs))
    return RunPlan(tuple(hosts), (ref,), plan.source)
