"""What a backup policy runs on each host: one sequence of borg commands and hooks.

Commands the kind reads back carry stable ids (CREATE, STATISTICS, check:NAME), which
observe finds them by.
"""

from __future__ import annotations

from agent.core.hosts import HostInfo
from agent.core.secrets import SecretRef
from agent.core.steps import Command, Sequence, Step
from agent.kinds.backup.borg import MISSING, PERMANENT, Borg
from agent.kinds.backup.spec import BackupSpec

INIT = "init repository"
CREATE, STATISTICS, CHECK = "create", "statistics", "check:"
CHECK_TITLES = {"repository": "check repository", "archives": "check archives",
                "extract": "restore drill (extract --dry-run)"}


def borg_for(spec: BackupSpec, host: HostInfo) -> Borg:
    prefix = spec.archive_prefix
    if prefix is None:
        prefix = host.name.lstrip("@") + "-"  # @local: local-
    return Borg(spec, prefix)


def plan(spec: BackupSpec, host: HostInfo) -> list[Step | Sequence]:
    borg = borg_for(spec, host)
    retry = {"retries": spec.retries, "retry_wait": float(spec.retry_wait),
             "permanent": PERMANENT}
    commands = [
        Command(INIT, borg.init(), unless=borg.exists(), missing=MISSING,
                effect="changed", warning=(1,), secrets=True, **retry,  # type: ignore[arg-type]
                preview=f"would run borg init --encryption {spec.encryption}"),
        *(Command(f"hook before: {hook}", ("sh", "-c", hook)) for hook in spec.hooks.before),
        *(Command(f"dump sqlite {db.path}", borg.dump(db.path, db.dump_name))
          for db in spec.databases),
        Command("create archive", borg.create(), effect="changed", warning=(1,), id=CREATE,
                secrets=True, preview=_preview(spec, borg), **retry,  # type: ignore[arg-type]
                unless=borg.recent(spec.frequency) if spec.frequency else None),
    ]
    if spec.retention is not None:
        commands += [
            Command("prune", borg.prune(), check=borg.prune(dry_run=True), effect="changed",
                    changed_if=r"^(Pruning archive|Would prune)", warning=(1,),
                    secrets=True, listing=True, **retry),  # type: ignore[arg-type]
            Command("compact", borg.compact(), when="after_change", effect="changed",
                    warning=(1,), secrets=True, **retry),  # type: ignore[arg-type]
        ]
    commands += [
        Command(CHECK_TITLES[check.name], borg.check(check.name), effect="ok",
                when="always", needs=(INIT,), every=check.frequency,
                stamp=f"{borg.state_dir}/check-{check.name}", secrets=True, preview="due",
                id=CHECK + check.name)
        for check in spec.checks
    ]
    commands += [
        Command("read statistics", borg.statistics(), check=borg.statistics(), effect="ok",
                when="always", needs=(INIT,), warning=(1,), secrets=True,
                id=STATISTICS),
        *(Command(f"hook after: {hook}", ("sh", "-c", hook)) for hook in spec.hooks.after),
    ]
    if spec.databases:
        commands.append(Command("remove dumps", borg.remove_dumps(), when="always", check=("true",),
                                effect="ok"))
    commands += [Command(f"hook on_error: {hook}", ("sh", "-c", hook), when="failed")
                 for hook in spec.hooks.on_error]
    return [Sequence(f"borg {spec.repository}", tuple(commands), borg.env(),
                     secret_env(spec))]


def secret_env(spec: BackupSpec) -> dict[str, SecretRef]:
    """An {env: ...} passphrase, resolved by the engine and sent to borg over stdin."""
    if spec.passphrase is not None and spec.passphrase.env is not None:
        return {"BORG_PASSPHRASE": spec.passphrase}
    return {}


def _preview(spec: BackupSpec, borg: Borg) -> str:
    text = f"would create archive {borg.prefix}<now> of {', '.join(spec.sources)}"
    if spec.databases:
        text += f" with dumps of {', '.join(db.path for db in spec.databases)}"
    if spec.exclude:
        text += f", excluding {', '.join(spec.exclude)}"
    return text

