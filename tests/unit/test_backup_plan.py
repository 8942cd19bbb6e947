"""The backup kind without hosts: spec -> the commands it plans, as data."""

from __future__ import annotations

import json

import pytest

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Sequence
from agent.engine import sequence
from agent.kinds.backup import KIND
from agent.kinds.backup.spec import BackupSpec

H1 = HostInfo("h1")
SPEC = {
    "repository": "ssh://backup@h3/srv/borg/h1",
    "passphrase": {"file": "/etc/opsagent/borg.pass"},
    "sources": ["/etc", "/home"],
    "exclude": ["/home/*/.cache"],
    "compression": "zstd,6",
    "retention": {"keep_daily": 7, "keep_weekly": 4},
    "checks": [{"name": "repository", "frequency": "1w"}, {"name": "extract", "frequency": "30d"}],
    "hooks": {"before": ["echo before"], "on_error": ["echo failed"]},
    "databases": [{"type": "sqlite", "path": "/var/lib/app/app.db"}],
    "lock_wait": 60,
    "retries": 2,
}


def plan(spec: dict[str, object], interval: float | None = None) -> Sequence:
    context = {"interval": interval} if interval else {}
    steps = KIND.plan(BackupSpec.model_validate(spec, context=context), H1)
    assert len(steps) == 1 and isinstance(steps[0], Sequence)
    return steps[0]


def by_name(seq: Sequence) -> dict[str, Command]:
    return {c.name: c for c in seq.commands}


def test_commands_in_order_with_their_conditions() -> None:
    seq = plan(SPEC)
    assert [c.name for c in seq.commands] == [
        "init repository", "hook before: echo before", "dump sqlite /var/lib/app/app.db",
        "create archive", "prune", "compact", "check repository",
        "restore drill (extract --dry-run)", "read statistics", "remove dumps",
        "hook on_error: echo failed",
    ]
    when = {c.name: c.when for c in seq.commands}
    assert when["prune"] == "ok"  # never after a failed create
    assert when["compact"] == "after_change"
    assert when["remove dumps"] == "always"
    assert when["hook on_error: echo failed"] == "failed"


def test_create_arguments() -> None:
    create = by_name(plan(SPEC))["create archive"]
    assert create.argv == (
        "borg", "create", "--json", "--compression", "zstd,6", "--lock-wait", "60",
        "--exclude", "/home/*/.cache", "ssh://backup@h3/srv/borg/h1::h1-{now:%Y-%m-%dT%H:%M:%S}",
        "/etc", "/home", by_name(plan(SPEC))["remove dumps"].argv[-1],
    )
    assert create.warning == (1,) and create.retries == 2 and create.effect == "changed"
    assert create.unless is None  # no schedule, no frequency: every run makes an archive


def test_prune_is_dry_run_in_check_mode_and_limited_to_this_host() -> None:
    prune = by_name(plan(SPEC))["prune"]
    assert prune.argv == ("borg", "prune", "--list", "--glob-archives", "h1-*", "--keep-daily",
                          "7", "--keep-weekly", "4", "--lock-wait", "60",
                          "ssh://backup@h3/srv/borg/h1")
    assert prune.check is not None and "--dry-run" in prune.check
    assert prune.listing


def test_checks_have_frequencies_and_a_stamp_per_repository() -> None:
    cmds = by_name(plan(SPEC))
    other = by_name(plan({**SPEC, "repository": "/srv/borg/other"}))
    assert cmds["check repository"].every == 7 * 86400
    assert cmds["restore drill (extract --dry-run)"].every == 30 * 86400
    assert cmds["check repository"].stamp != other["check repository"].stamp
    assert cmds["check repository"].argv[:3] == ("borg", "check", "--repository-only")


def test_frequency_defaults_to_half_the_schedule() -> None:
    create = by_name(plan(SPEC, interval=86400))["create archive"]
    assert create.unless is not None and create.unless[-1] == "43200"
    explicit = by_name(plan({**SPEC, "frequency": "1h"}, interval=86400))["create archive"]
    assert explicit.unless is not None and explicit.unless[-1] == "3600"


def test_passphrase_file_is_read_on_the_host_and_env_goes_over_stdin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seq = plan(SPEC)
    assert seq.env["BORG_PASSCOMMAND"] == "cat /etc/opsagent/borg.pass"
    assert not seq.secret_env
    monkeypatch.setenv("TEST_BORG_PASS", "s3cr3t-value")
    seq = plan({**SPEC, "passphrase": {"env": "TEST_BORG_PASS"}})
    assert "BORG_PASSCOMMAND" not in seq.env
    stdin, secrets = sequence.job(seq, check=False)
    assert [s.reveal() for s in secrets] == ["s3cr3t-value"]
    job = json.loads(stdin.splitlines()[1])
    assert job["secret_env"] == {"BORG_PASSPHRASE": "s3cr3t-value"}
    every_argv = json.dumps([job["commands"], job["env"]])
    assert "s3cr3t-value" not in every_argv
    hooks = [c for c in seq.commands if c.name.startswith("hook")]
    assert hooks and not any(c.secrets for c in hooks)  # hooks never see the passphrase


def test_no_retention_means_no_prune_and_no_compact() -> None:
    names = [c.name for c in plan({**SPEC, "retention": None}).commands]
    assert "prune" not in names and "compact" not in names


def test_archive_times_are_read_in_the_hosts_time_zone() -> None:
    from agent.kinds.backup.observe import _timestamp

    utc = 1_795_320_000.0  # 2026-11-22T04:00:00Z
    assert _timestamp("2026-11-22T09:45:00.000000", "+0545") == utc  # Kathmandu's host
    assert _timestamp("2026-11-21T23:00:00", "-0500") == utc
    assert _timestamp("2026-11-22T04:00:00+00:00", "+0900") == utc  # a marked time wins
