"""contrib/: systemd units rendered from templates/ and checked by systemd-analyze, alert
rules checked and unit-tested by promtool, the Grafana dashboard's shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
OPSAGENT = str(Path(sys.executable).with_name("opsagent"))


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "install-service", *args],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("mode", ["daemon", "timer"])
def test_contrib_units_are_the_templates_rendered_with_defaults(mode: str, tmp_path: Path) -> None:
    done = install("--mode", mode, "--dest", str(tmp_path), "--opsagent", "/usr/local/bin/opsagent")
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted({"daemon": ["opsagent.service"],
                              "timer": ["opsagent-apply.service", "opsagent-apply.timer"]}[mode])
    for name in written:
        assert (tmp_path / name).read_text() == (CONTRIB / "systemd" / name).read_text(), name


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("extra", [(), ("--push-only", "--user", "root"), ("--mode", "timer")])
def test_rendered_units_pass_systemd_analyze_verify(extra: tuple[str, ...], tmp_path: Path) -> None:
    assert install(*extra, "--dest", str(tmp_path), "--opsagent", OPSAGENT).returncode == 0
    units = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    daemon = tmp_path / "opsagent.service"
    if daemon.exists():
        text = daemon.read_text()
        assert f"ExecStart={OPSAGENT} daemon --config /etc/opsagent/agent.yml\n" in text
        assert "KillMode=mixed\n" in text
        assert ("ProtectSystem=strict\n" in text) == ("--push-only" in extra)


def test_a_missing_destination_is_refused(tmp_path: Path) -> None:
    done = install("--dest", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert done.stderr.endswith(f"error: --dest {tmp_path / 'nope'}: no such directory\n")


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) not installed")
@pytest.mark.parametrize(("rules", "count"), [
    ("opsagent-rules", 18),
    # a week of history, then a change: z-scores, the ratio to a week before, growth rates,
    # and alerts that fire on a real change, not on a wobble, a constant or a young series
    ("opsagent-trends", 21),
])
def test_rules_pass_promtool_check_and_their_unit_tests(rules: str, count: int) -> None:
    folder = CONTRIB / "prometheus"
    check = subprocess.run(["promtool", "check", "rules", f"{rules}.yml"], cwd=folder,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {count} rules found" in check.stdout
    tests = subprocess.run(["promtool", "test", "rules", f"{rules}.test.yml"], cwd=folder,
                           capture_output=True, text=True, check=False)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout


def dashboard_exprs() -> list[str]:
    data = json.loads((CONTRIB / "grafana" / "opsagent-dashboard.json").read_text())
    return [t["expr"] for p in data["panels"] for t in p["targets"]]


def test_dashboard_panels_have_queries_on_opsagent_metrics() -> None:
    data = json.loads((CONTRIB / "grafana" / "opsagent-dashboard.json").read_text())
    assert data["uid"] == "opsagent-fleet"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    assert all("opsagent_" in expr for expr in dashboard_exprs())
    used = " ".join(dashboard_exprs())
    for name in ("opsagent_backup_last_success_timestamp_seconds", "opsagent_backup_check_success",
                 "opsagent_backup_restore_drill_success", "opsagent_backup_repository_bytes",
                 "opsagent_sync_merges_total", "opsagent_sync_conflict_since_timestamp_seconds",
                 "opsagent_sync_last_success_timestamp_seconds", "opsagent_maintenance_git_size_bytes",
                 "policy:opsagent_run_duration_seconds:mean1h_ratio_1w",
                 "policy_host:opsagent_last_run_duration_seconds:zscore_1w",
                 "policy_host:opsagent_backup_last_archive_original_bytes:zscore_1w",
                 "policy_host:opsagent_backup_repository_bytes:deriv1d"):
        assert name in used, name


@pytest.mark.parametrize(("flag", "value"), [
    ("--on-calendar", "hourly\nExecStartPre=/bin/sh -c id"),
    ("--splay", "5min\nUser=root"),
    ("--config", "/etc/agent.yml\nExecStartPre=/bin/true"),
    ("--user", "root\nAmbientCapabilities=CAP_SYS_ADMIN"),
    ("--policies", "relative/policies"),
])
def test_a_field_that_would_inject_a_directive_is_refused_and_nothing_written(
        flag: str, value: str, tmp_path: Path) -> None:
    mode = ("--mode", "timer") if flag in ("--on-calendar", "--splay", "--policies") else ()
    done = install(*mode, flag, value, "--dest", str(tmp_path), "--opsagent", OPSAGENT,
                   "--push-only")
    assert done.returncode == 1 and f"error: {flag}: " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_specifiers_variables_and_spaces_in_paths_are_escaped(tmp_path: Path) -> None:
    config = "/etc/ops %n/$HOME.yml"
    assert install("--dest", str(tmp_path), "--opsagent", OPSAGENT, "--config",
                   config).returncode == 0
    unit = tmp_path / "opsagent.service"
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    assert line == f'ExecStart={OPSAGENT} daemon --config "/etc/ops %%n/$$HOME.yml"'
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_an_opsagent_others_can_write_is_warned_about(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "opsagent"
    script.write_text("#!/usr/bin/python3\n")
    script.chmod(0o755)
    folder.chmod(0o777)
    done = install("--print", "--opsagent", str(script))
    assert done.returncode == 0
    assert f"warning: {folder} is writable by others: whoever can write it runs code as root" \
        in done.stderr
    folder.chmod(0o755)
    assert f"{folder} is writable" not in install("--print", "--opsagent", str(script)).stderr
