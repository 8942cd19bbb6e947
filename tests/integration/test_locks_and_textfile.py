"""One-shot runs against the real state directory: host locks shared with the daemon,
SIGTERM ending a run cleanly, and the textfile export checked by promtool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.project import SLOW, local_project, opsagent, stop_midway


def hold_lock(state: Path) -> subprocess.Popen[str]:
    code = ("import sys, time; from pathlib import Path; from agent.state.locks import host_locks\n"
            "with host_locks(Path(sys.argv[1]), ['@local'], 'opsagent daemon: policy web', 5):\n"
            "    print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(state)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_apply_waits_for_a_held_host_then_names_the_holder(tmp_path: Path) -> None:
    root, state = local_project(tmp_path), tmp_path / "state"
    holder = hold_lock(state)
    try:
        started = time.monotonic()
        done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", str(state),
                        "--lock-wait", "1")
        waited = time.monotonic() - started
        assert done.returncode == 1
        assert done.stderr == (
            f"opsagent: host @local is being converged by pid {holder.pid} (opsagent daemon: "
            f"policy web, since {_since(state)}) in {state}; gave up after waiting 1 s\n")
        assert waited >= 1.0
        assert not (tmp_path / "sandbox").exists()  # nothing was done
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is free at once, no clean-up needed
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", str(state),
                    "--lock-wait", "0")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sandbox" / "app.conf").exists()
    # the apply that gave up waiting ran nothing, so it left no run to call interrupted
    history = json.loads(opsagent(root, "history", "--state-dir", str(state), "--json").stdout)
    assert [run["failed"] for run in history] == [False]
    assert "interrupted" not in opsagent(root, "audit", "log", "--state-dir", str(state)).stdout


def _since(state: Path) -> str:
    info = json.loads((state / "locks" / "host-_local.lock").read_text())
    return time.strftime("%H:%M:%S", time.localtime(info["since"]))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 2), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_lets_the_running_operation_end_and_skips_the_rest(
        tmp_path: Path, signum: int, code: int) -> None:
    root, state = local_project(tmp_path, SLOW), tmp_path / "state"
    returncode, out, err = stop_midway(root, state, signum)
    assert returncode == code, err
    assert "stopping after the operations under way; the run is recorded" in err
    (host,) = json.loads(out)["hosts"]
    assert [(op["status"], op["error"]) for op in host["ops"]] == [
        ("changed", ""), ("ran", ""), ("skipped", "")]
    assert host["error"].startswith("stopped: opsagent was asked to stop")
    # the first command finished; the second never started
    assert (tmp_path / "sandbox" / "log").read_text() == "1\n"
    history = opsagent(root, "history", "--state-dir", str(state), "--json")
    assert json.loads(history.stdout)[0]["failed"] is True
    verify = opsagent(root, "audit", "verify", "--state-dir", str(state))
    assert verify.returncode == 0 and ": 2 entries, chain intact" in verify.stdout, verify.stdout


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_textfile_export_passes_promtool_and_tells_compliance(tmp_path: Path) -> None:
    root, state, out = local_project(tmp_path), tmp_path / "state", tmp_path / "textfile"
    out.mkdir()
    args = ("apply", "policies", "-i", "inventory.yml", "--state-dir", str(state),
            "--textfile-dir", str(out))
    assert opsagent(root, *args).returncode == 0
    text = (out / "opsagent.prom").read_text()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False)
    assert (check.returncode, check.stdout + check.stderr) == (0, "")
    assert 'opsagent_policy_compliant{host="@local",policy="files"} 1.0' in text
    assert 'opsagent_operations_total{outcome="ran",policy="files"} 1.0' in text
    assert [p.name for p in out.iterdir()] == ["opsagent.prom"]  # no temporary file left
    (tmp_path / "sandbox" / "app.conf").write_text("edited by hand\n")
    assert opsagent(root, "plan", "policies", "-i", "inventory.yml", "--state-dir", str(state)
                    ).returncode == 0
    assert opsagent(root, *args).returncode == 0
    text = (out / "opsagent.prom").read_text()
    assert 'opsagent_operations_total{outcome="changed",policy="files"} 5.0' in text


def test_textfile_dir_must_exist_before_anything_runs(tmp_path: Path) -> None:
    root = local_project(tmp_path)
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--textfile-dir",
                    str(tmp_path / "nope"))
    assert done.returncode == 1
    assert done.stderr.endswith(f"error: --textfile-dir {tmp_path / 'nope'}: no such directory\n")
    assert not (tmp_path / "sandbox").exists()
    assert os.environ["OPSAGENT_STATE_DIR"]
