"""The state store and audit log on a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.core.results import HostResult, OpResult, RunResult, Status
from agent.core.secrets import Secret, resolve_all
from agent.state import audit, evidence
from agent.state.schema import VERSION
from agent.state.store import Store

REPO = Path(__file__).resolve().parents[2]


def run_result(n: int = 0, secret: str = "") -> RunResult:
    ops = [
        OpResult("web", "tasks", "config", "files.template", Status.CHANGED,
                 diff=f"- old\n+ new {n} {secret}"),
        OpResult("web", "tasks", "stamp", "server.shell", Status.RAN),
        OpResult("web", "tasks", "line", "files.line", Status.OK),
        OpResult("audit", "tasks", "stray", "files.file", Status.CHANGED, planned=True),
    ]
    return RunResult([HostResult("h1", ops), HostResult("h2", unreachable=True, error="down")],
                     False, 1.5)


def test_a_run_is_stored_with_an_audit_entry_per_executed_change(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        run_id = store.record(run_result(), command="apply", source="inv.yml")
        (run,) = store.runs()
        assert (run.id, run.command, run.source, run.failed) == (run_id, "apply", "inv.yml", True)
        assert store.host_counts(run_id)[0] == ("h1", False, {
            "ok": 1, "changed": 1, "ran": 1, "failed": 0, "skipped": 0, "would_change": 1,
            "would_run": 0}, "")
        rows = store.db.execute("SELECT host, step, status FROM audit ORDER BY seq").fetchall()
        assert rows == [("h1", "config", "changed"), ("h1", "stamp", "ran")]
        assert audit.verify(store.db) == (2, [])
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_step_is_audited_for_it_may_have_changed_something(tmp_path: Path) -> None:
    ops = [OpResult("sync", "sync", "sync api", "command", Status.FAILED, error="diverged"),
           OpResult("sync", "sync", "sync web", "command", Status.SKIPPED),
           OpResult("sync", "sync", "sync db", "command", Status.FAILED, planned=True)]
    with Store(tmp_path) as store:
        store.record(RunResult([HostResult("h1", ops)], False, 1.0), command="apply", source="-")
        rows = store.db.execute("SELECT host, step, status FROM audit ORDER BY seq").fetchall()
    assert rows == [("h1", "sync api", "failed")]  # not the skipped one, nor a judged one


def test_secrets_are_masked_before_they_are_stored(tmp_path: Path) -> None:
    Secret("hunter2")  # resolved in this process: known to the store's scrubbing
    with Store(tmp_path) as store:
        store.record(run_result(secret="hunter2"), command="apply", source="-")
    assert b"hunter2" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_verify_finds_an_edited_a_deleted_and_a_truncated_entry(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(3):
            store.record(run_result(n), command="apply", source="-")
        assert audit.verify(store.db) == (6, [])
        store.db.execute("UPDATE audit SET diff = 'nothing to see' WHERE seq = 2")
        assert audit.verify(store.db)[1] == ["entry 2 was changed after it was written"]
    with Store(tmp_path) as store:
        store.db.execute("UPDATE audit SET diff = '' WHERE seq = 2")  # the original (a command)
        assert audit.verify(store.db)[1] == []
        store.db.execute("DELETE FROM audit WHERE seq = 3")
        assert audit.verify(store.db)[1] == [
            "entries 3-3 are missing", "entry 4 does not follow the entry before it (deleted or replaced)"]
    with Store(tmp_path / "b") as store:
        store.record(run_result(), command="apply", source="-")
        store.db.execute("DELETE FROM audit WHERE seq = 2")
        assert audit.verify(store.db)[1] == [
            "the log ends at entry 1 but its head says 2: the newest entries were deleted"]


WRITER = """
import sys
from agent.state.schema import VERSION
from agent.state.store import Store
from tests.unit.test_state import run_result
store = Store(__import__("pathlib").Path(sys.argv[1]))
print("ready", flush=True)
n = 0
while True:
    store.record(run_result(n), command="apply", source="-")
    n += 1
"""


def test_sigkill_at_any_moment_leaves_whole_runs_and_an_intact_chain(tmp_path: Path) -> None:
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert runs > 5
    # every stored run is whole: 2 hosts, 4 ops, 2 audit entries each
    assert db.execute("SELECT count(*) FROM host_results").fetchone()[0] == 2 * runs
    assert db.execute("SELECT count(*) FROM op_results").fetchone()[0] == 4 * runs
    assert audit.verify(db) == (2 * runs, [])


def test_history_and_audit_verify_from_the_cli(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.record(run_result(), command="apply", source="inv.yml")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", *args, "--state-dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, check=False)

    history = cli("history")
    assert history.returncode == 0
    assert "apply  FAILED" in history.stdout and "h2: unreachable" in history.stdout
    verified = cli("audit", "verify")
    assert verified.returncode == 0 and "2 entries, chain intact" in verified.stdout
    with Store(tmp_path) as store:
        store.db.execute("UPDATE audit SET who = 'nobody' WHERE seq = 1")
    tampered = cli("audit", "verify")
    assert tampered.returncode == 1
    assert "audit: entry 1 was changed after it was written" in tampered.stdout


def test_a_broken_state_file_gets_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_text("not a database, just text\n" * 100)
    done = subprocess.run([sys.executable, "-m", "agent", "history", "--state-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (
        1, f"opsagent: state store {tmp_path / 'state.db'}: file is not a database\n")


def test_a_store_from_a_newer_opsagent_is_refused_by_name(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    done = subprocess.run([sys.executable, "-m", "agent", "history", "--state-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    expected = (f"opsagent: state store {tmp_path / 'state.db'} was written by a newer opsagent"
                f" (schema 99, this one knows {VERSION})\n")
    assert (done.returncode, done.stderr) == (1, expected)


def test_summaries_keep_the_latest_result_per_policy_and_host(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.record(run_result(), command="apply", source="-", modes={"audit": "audit"})
        rows = store.db.execute("SELECT policy, host, mode, result, compliant, drift, changed,"
                                " last_success IS NOT NULL FROM latest ORDER BY policy").fetchall()
        assert rows == [("audit", "h1", "audit", "success", 0, 1, 0, 1),
                        ("web", "h1", "enforce", "success", 1, 0, 1, 1)]
        assert store.db.execute("SELECT host, reachable FROM hosts ORDER BY host").fetchall() == [
            ("h1", 1), ("h2", 0)]
        failing = run_result()
        failing.hosts[0].ops[2].status = Status.FAILED
        store.record(failing, command="apply", source="-")
        web = store.db.execute("SELECT result, compliant, last_success < finished FROM latest"
                               " WHERE policy = 'web'").fetchone()
        assert web == ("failed", 0, 1)  # the last success is kept from the run before
        totals = dict(store.db.execute("SELECT outcome, count FROM totals WHERE policy = 'web'"))
        assert totals == {"changed": 2, "ran": 2, "ok": 1, "failed": 1}
        (count,) = store.db.execute("SELECT count FROM durations WHERE policy = 'web'").fetchone()
        assert count == 2


def test_a_version_1_store_is_brought_up_to_date_and_keeps_its_runs(tmp_path: Path) -> None:
    from agent.state.schema import V1

    db = sqlite3.connect(tmp_path / "state.db")
    for statement in V1.split(";\n"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO runs VALUES (1, 1.0, 2.0, 'apply', 'root', 0, '-', 0)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        assert [r.id for r in store.runs()] == [1]
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        store.record(run_result(), command="apply", source="-")
        assert store.db.execute("SELECT count(*) FROM latest").fetchone()[0] == 2


def test_retention_drops_old_results_then_old_runs_but_never_the_audit_log(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for n in range(3):
            store.record(run_result(n), command="apply", source="-", started=1000.0 * (n + 1))
        store.db.execute("UPDATE runs SET finished = started")
        for run_id in (1, 2):
            evidence.keep(tmp_path, run_id, (run_id, "0" * 64), {("p", "h1"): evidence.proof(
                "security", "", {})})
        assert store.prune(results_before=2500, runs_before=1500) == (8, 1)  # 2 runs x 4 ops
        assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == ["run-2.json"]
        assert [r.id for r in store.runs()] == [3, 2]
        kept = store.db.execute("SELECT DISTINCT run_id FROM op_results").fetchall()
        assert kept == [(3,)]
        assert store.host_counts(2)  # the summary of run 2 is still there
        assert audit.verify(store.db) == (6, [])


def test_compliance_is_about_apply_and_plan_of_the_policies_in_force(tmp_path: Path) -> None:
    failing = RunResult([HostResult("h1", [OpResult("web", "backup", "restore", "borg",
                                                    Status.FAILED, error="no such archive")])],
                        False, 0.5)
    with Store(tmp_path) as store:
        store.record(run_result(), command="apply", source="inv.yml")
        before = [(r.policy, r.host, r.compliant) for r in store.status()]
        store.record(failing, command="restore", source="inv.yml")  # an action, not convergence
        assert [(r.policy, r.host, r.compliant) for r in store.status()] == before
        assert store.runs()[0].failed  # still in history
        # a daemon's set in force: the policy 'audit' is not in it, 'web' is on h1 only
        store.set_in_force("abc", [("web", "h1")])
        assert {(r.policy, r.host) for r in store.status()} == {("web", "h1")}
        store.set_in_force("def", [("web", "h1"), ("audit", "*")])
        assert {(r.policy, r.host) for r in store.status()} == {("web", "h1"), ("audit", "h1")}


def test_evidence_is_kept_with_secrets_masked_and_its_digest_is_of_what_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_PASS", "pw-evidence-9931")
    resolve_all({"p": {"env": "EVIDENCE_PASS"}})
    made = evidence.proof("security", "read pw-evidence-9931", {"found": "x pw-evidence-9931"})
    path = evidence.keep(tmp_path, 7, (1, "0" * 64), {("p", "h1"): made})
    text = path.read_text()
    assert "pw-evidence-9931" not in text and "pw-evidence-9931" not in made.summary
    [kept] = json.loads(text)["evidence"]
    assert kept["sha256"] == hashlib.sha256(evidence.canonical(kept["document"])).hexdigest()
