"""The backup kind on @local with real borg: retention, failures, checks, secrets, dumps."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.borg import BorgProject, make, ops

# A calendar of archives: two on the last day, daily through June, then every ten days.
JUNE = [dt.datetime(2026, 6, d, 12) for d in range(1, 31)] + [dt.datetime(2026, 6, 30, 18)]
SPARSE = [dt.datetime(2026, 5, 22, 12) - dt.timedelta(days=10 * i) for i in range(14)]
RULES = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
PERIODS = {"keep_daily": "%Y-%m-%d", "keep_weekly": "%G-%V", "keep_monthly": "%Y-%m"}


def expected_survivors(times: list[dt.datetime]) -> set[dt.datetime]:
    """`borg help prune`: per rule, newest first, keep the first archive of each period not
    kept by an earlier rule, up to N; if fewer than N periods exist, keep the oldest too."""
    kept: set[dt.datetime] = set()
    for rule, count in RULES.items():
        last, taken, archive = None, 0, None
        for archive in sorted(times, reverse=True):
            period = archive.strftime(PERIODS[rule])
            if period == last:
                continue
            last = period
            if archive not in kept:
                kept.add(archive)
                taken += 1
                if taken == count:
                    break
        if archive is not None and taken < count and archive not in kept:
            kept.add(archive)
    return kept


def test_retention_keeps_exactly_what_the_rules_say_across_a_calendar(tmp_path: Path) -> None:
    rules = ", ".join(f"{k}: {v}" for k, v in RULES.items())
    project = make(tmp_path, f"  retention: {{{rules}}}\n  frequency: 36500d\n"
                             "  checks: []\n  encryption: repokey\n")
    project.borg("init", "--encryption", "repokey", str(project.repo))
    times = JUNE + SPARSE
    for when in times:
        stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        project.borg("create", "--timestamp", stamp,
                     f"{project.repo}::local-{when:%Y-%m-%dT%H:%M}", str(project.source))
    project.borg("create", f"{project.repo}::other-host-archive", str(project.source))

    code, result = project.apply()
    assert code == 0, result
    done = ops(result)
    assert done["create archive"]["status"] == "ok"  # the newest is younger than frequency
    assert done["prune"]["status"] == "changed"
    assert done["compact"]["status"] == "changed"
    want = {f"local-{t:%Y-%m-%dT%H:%M}" for t in expected_survivors(times)}
    assert len(want) == 7 + 4 + 5  # daily, weekly, monthly (4 periods left, plus the oldest)
    assert set(project.archives()) == want | {"other-host-archive"}  # other prefixes untouched

    code, again = project.apply()
    assert code == 0 and ops(again)["prune"]["status"] == "ok"
    counts = again["hosts"][0]["counts"]
    assert counts["changed"] == 0 and counts["ran"] == 0  # a second apply changes nothing


def test_a_failed_create_prunes_nothing_and_runs_on_error_hooks(tmp_path: Path) -> None:
    """The repository's disk fills up: create fails (borg error), prune and compact never run."""
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "opsagent-test", str(store)],
                   check=True)
    try:
        marker = tmp_path / "on-error-ran"
        project = make(tmp_path, "  retention: {keep_last: 1}\n  checks: []\n"
                                 f"  hooks: {{on_error: ['echo failed > {marker}']}}\n")
        project.repo = store / "repo"
        project.write("  retention: {keep_last: 1}\n  checks: []\n"
                      f"  hooks: {{on_error: ['echo failed > {marker}']}}\n")
        project.borg("init", "--encryption", "repokey-blake2", str(project.repo))
        project.borg("config", str(project.repo), "max_segment_size", "1048576")  # small disk
        for _ in range(2):
            code, result = project.apply()
            assert code == 0, result
            time.sleep(1.1)  # archive names are per second
        before = project.archives()
        assert len(before) == 1  # keep_last 1 pruned the other

        free = os.statvfs(store).f_bavail * os.statvfs(store).f_frsize
        (store / "filler").write_bytes(b"\0" * (free - 2 * 1024 * 1024))
        (project.source / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
        code, result = project.apply()
        assert code == 2
        done = ops(result)
        create = done["create archive"]
        assert create["status"] == "failed"
        assert create["error"].startswith("exit code 2 (error): ")
        assert "No space left on device" in create["error"]
        assert "Traceback" not in create["error"]
        assert done["prune"]["status"] == "skipped" and done["compact"]["status"] == "skipped"
        assert marker.read_text() == "failed\n"
        (store / "filler").unlink()
        assert project.archives() == before
        project.borg("check", str(project.repo))  # and the repository is consistent
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def test_a_held_lock_is_waited_for_then_retried(tmp_path: Path) -> None:
    project = make(tmp_path, "  lock_wait: 1\n  retries: 1\n  retry_wait: 1\n  checks: []\n")
    assert project.apply()[0] == 0
    env = {"BORG_PASSCOMMAND": f"cat {project.passfile}", "PATH": "/usr/bin:/bin"}
    holder = subprocess.Popen(["borg", "with-lock", str(project.repo), "sleep", "30"], env=env)
    try:
        time.sleep(2)
        code, result = project.apply()
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    init = ops(result)["init repository"]
    assert init["status"] == "failed" and "(after 2 attempts)" in init["error"]
    assert "Failed to create/acquire the lock" in init["error"]
    assert len(project.archives()) == 1

    project.write("  lock_wait: 20\n  checks: []\n")  # the lock is let go while we wait
    holder = subprocess.Popen(["borg", "with-lock", str(project.repo), "sleep", "3"], env=env)
    try:
        time.sleep(1)
        code, result = project.apply()
    finally:
        holder.wait()
    assert code == 0, result
    assert len(project.archives()) == 2


def test_a_borg_warning_is_not_a_failure(tmp_path: Path) -> None:
    project = make(tmp_path, "  checks: []\n")
    project.write("  checks: []\n  exclude: []\n")
    policy = project.root / "policies" / "backup.yml"
    policy.write_text(policy.read_text().replace(
        f"sources: [{project.source}]", f"sources: [{project.source}, /nonexistent-opsagent]"))
    code, result = project.apply()
    create = ops(result)["create archive"]
    assert code == 0, result
    assert create["status"] == "changed"
    assert create["warning"].startswith("exit code 1 (warning): ")
    assert "/nonexistent-opsagent" in create["warning"]


def test_a_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    project = make(tmp_path, "  checks: []\n")
    assert project.apply()[0] == 0
    project.passfile.write_text("not the passphrase\n")
    code, result = project.apply()
    assert code == 2
    done = ops(result)
    assert done["init repository"]["status"] == "failed"
    assert "passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND or via " \
           "BORG_PASSPHRASE_FD is incorrect" in done["init repository"]["error"]
    assert done["create archive"]["status"] == "skipped"
    project.passfile.write_text("correct horse\n")
    assert len(project.archives()) == 1  # never re-initialised, nothing lost


def test_a_corrupted_segment_is_found_by_the_repository_check(tmp_path: Path) -> None:
    project = make(tmp_path, "  checks: [{name: repository, frequency: always}]\n")
    (project.source / "random.bin").write_bytes(os.urandom(300_000))
    textfile = tmp_path / "metrics"
    textfile.mkdir()
    assert project.apply()[0] == 0
    time.sleep(1.1)
    assert project.apply()[0] == 0  # the manifest moves on; the data stays where it was
    segments = sorted((p for p in (project.repo / "data").rglob("[0-9]*") if p.is_file()),
                      key=lambda p: p.stat().st_size)
    biggest = segments[-1]
    data = bytearray(biggest.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    biggest.write_bytes(bytes(data))

    code, result = project.apply("--textfile-dir", str(textfile))
    assert code == 2
    done = ops(result)
    assert done["create archive"]["status"] == "changed"  # deduplicated: old data not read
    check = done["check repository"]
    assert check["status"] == "failed"
    assert check["error"].startswith("exit code 1: ")
    assert "Segment entry checksum mismatch" in check["error"]
    assert "errors found" in check["error"]
    prom = (textfile / "opsagent.prom").read_text()
    assert 'opsagent_backup_check_success{check="repository",host="@local",policy="files",' \
           f'repository="{project.repo}"}} 0.0' in prom
    assert 'opsagent_backup_last_run_success{host="@local",policy="files",' \
           f'repository="{project.repo}"}} 0.0' in prom


def test_checks_run_at_their_own_frequency(tmp_path: Path) -> None:
    project = make(tmp_path, "  checks: [{name: repository, frequency: 1h}, "
                             "{name: extract, frequency: always}]\n")
    first = ops(project.apply()[1])
    second = ops(project.apply()[1])
    assert first["check repository"]["status"] == "ok" and first["check repository"]["diff"] == ""
    assert second["check repository"]["diff"].startswith("not due: last ran ")
    assert second["check repository"]["duration"] < 0.5  # no borg ran
    assert second["restore drill (extract --dry-run)"]["duration"] > 0.1  # borg ran again

    shutil.rmtree(project.repo)  # a new repository at the same path is checked at once
    third = ops(project.apply()[1])
    assert third["init repository"]["status"] == "changed"
    assert third["check repository"]["status"] == "ok" and third["check repository"]["diff"] == ""


def test_a_sqlite_database_is_dumped_consistently_and_restorable(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    db.commit()
    project = make(tmp_path, f"  checks: []\n  databases: [{{type: sqlite, path: {db_path}}}]\n")
    code, result = project.apply()
    assert code == 0, result
    done = ops(result)
    assert done[f"dump sqlite {db_path}"]["status"] == "ran"
    assert done["remove dumps"]["status"] == "ok"

    target = tmp_path / "restored"
    proc = project.run("backup", "restore", "files", "policies", "--to", str(target))
    assert proc.returncode == 0, proc.stderr
    [dump] = list(target.rglob("app.db"))
    assert sqlite3.connect(dump).execute("SELECT count(*), sum(x) FROM t").fetchone() == (1000, 499500)
    [restored] = list(target.rglob("notes.txt"))
    assert restored.read_bytes() == (project.source / "notes.txt").read_bytes()
    db.close()


def test_plan_shows_what_would_be_created_pruned_and_checked_and_changes_nothing(
        tmp_path: Path) -> None:
    project = make(tmp_path, "  retention: {keep_last: 1}\n")
    assert project.apply()[0] == 0
    time.sleep(1.1)
    assert project.apply()[0] == 0
    before = sorted(project.archives())
    snapshot = {p: p.stat().st_mtime_ns for p in project.repo.rglob("*") if p.is_file()}
    time.sleep(1.1)
    proc = project.run("plan", "policies", "--diff")
    assert proc.returncode == 0, proc.stderr
    assert "create archive: would change" in proc.stdout
    assert "would create archive local-<now> of " + str(project.source) in proc.stdout
    assert "prune: ok" in proc.stdout and "Keeping archive (rule: secondly #1):" in proc.stdout
    assert "check repository: ok" in proc.stdout and "not due" in proc.stdout
    assert sorted(project.archives()) == before
    after = {p: p.stat().st_mtime_ns for p in project.repo.rglob("*") if p.is_file()}
    assert after == snapshot


def test_bad_restore_requests_change_nothing(tmp_path: Path) -> None:
    project: BorgProject = make(tmp_path, "  checks: []\n")
    assert project.apply()[0] == 0
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine\n")
    proc = project.run("backup", "restore", "files", "policies", "--to", str(busy))
    assert proc.returncode == 2
    assert f"{busy} is not empty: restore into a new or empty folder" in proc.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    proc = project.run("backup", "restore", "files", "policies", "--to", "relative/dir")
    assert proc.returncode == 1 and "expected an absolute folder" in proc.stderr
    proc = project.run("backup", "restore", "files", "policies", "--to", str(tmp_path / "n"),
                       "--archive", "no-such-archive")
    assert proc.returncode == 2 and "Archive no-such-archive does not exist" in proc.stderr
    assert not (tmp_path / "n").exists() or not any((tmp_path / "n").iterdir())


@pytest.mark.parametrize("verb", ["list"])
def test_list_shows_the_archives(tmp_path: Path, verb: str) -> None:
    project = make(tmp_path, "  checks: []\n")
    assert project.apply()[0] == 0
    proc = project.run("backup", verb, "files", "policies")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("@local: 1 archive\n  local-")


def test_a_missing_passphrase_makes_no_repository_and_a_half_made_one_is_made_anew(
        tmp_path: Path) -> None:
    project = make(tmp_path)
    project.passfile.unlink()  # not there yet (made by a later policy, or by hand)
    code, result = project.apply()
    assert code == 2
    init = ops(result)["init repository"]
    assert init["status"] == "failed"
    assert "cannot read the passphrase (cat " in init["error"]
    assert "the repository was not made" in init["error"]
    assert not project.repo.exists()
    # what an earlier opsagent (or a borg init by hand) left: a config and no manifest
    env = {**os.environ, "BORG_PASSCOMMAND": f"cat {project.passfile}"}
    subprocess.run(["borg", "init", "--encryption", "repokey-blake2", str(project.repo)],
                   env=env, capture_output=True, check=False)
    assert (project.repo / "config").is_file()
    project.passfile.write_text("correct horse\n")
    code, result = project.apply()
    assert code == 0, result
    assert ops(result)["init repository"]["status"] == "changed"
    assert len(project.archives()) == 1
    code, result = project.apply()  # and the next run finds it made
    assert code == 0 and ops(result)["init repository"]["status"] == "ok"
