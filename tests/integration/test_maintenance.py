"""The maintenance kind's git housekeeping on @local against real repositories made
untidy: thousands of loose objects (old unreachable ones among them), many packs, many
loose refs, a stale lock and gc.pid left by a killed process, a lock a live process
holds, a corrupted object. Every repository keeps the same reachable objects and a clean
fsck; only what is needed runs; a second apply changes nothing; outside its window (the
clock moved by libfaketime) a run only says what is pending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.utils import floatToGoString

from agent.metrics import exposition, registry_for
from tests.support.project import opsagent, snapshot

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "LC_ALL": "C"}
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
OLD = time.time() - 30 * 86400
ID = "git housekeeping"


def git(repo: Path, *args: str, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True,
                          input=input, env=ENV, check=check)
    return done.stdout.strip()


def blobs(repo: Path, count: int, tag: str) -> list[str]:
    text = "".join(f"{tag} {i}\n" for i in range(count))
    root = next(p for p in repo.parents if p.name == "srv").parent  # out of the globs' way
    folder = Path(tempfile.mkdtemp(prefix=f"{tag}.", dir=root))
    for i, line in enumerate(text.splitlines()):
        (folder / str(i)).write_text(line)
    names = "\n".join(str(folder / str(i)) for i in range(count))
    return git(repo, "hash-object", "-w", "--stdin-paths", input=names).split()


def commit(repo: Path, shas: list[str], message: str, parent: str = "") -> str:
    tree = git(repo, "mktree", input="".join(f"100644 blob {sha}\tf{i}\n" for i, sha in enumerate(shas)))
    return git(repo, "commit-tree", tree, "-m", message, *(["-p", parent] if parent else []))


def bare(root: Path, name: str) -> Path:
    repo = root / "srv" / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=ENV)
    return repo


def loose_repo(root: Path) -> tuple[Path, list[str], list[str]]:
    """7,000 reachable loose objects; 300 old unreachable ones and 40 young ones."""
    repo = bare(root, "loose")
    head = commit(repo, blobs(repo, 7000, "kept"), "many files")
    git(repo, "update-ref", "refs/heads/main", head)
    old = blobs(repo, 300, "old")
    for sha in old:
        os.utime(repo / "objects" / sha[:2] / sha[2:], (OLD, OLD))
    return repo, old, blobs(repo, 40, "young")


def packs_repo(root: Path, count: int = 60) -> Path:
    repo = bare(root, "packs")
    head = ""
    for i in range(count):
        head = commit(repo, blobs(repo, 3, f"p{i}"), f"c{i}", head)
        git(repo, "update-ref", "refs/heads/main", head)
        git(repo, "repack", "-d", "-q")  # each round's objects in a pack of their own
    return repo


def refs_repo(root: Path, name: str = "refs") -> Path:
    repo = bare(root, name)
    head = commit(repo, blobs(repo, 2, "r"), "one")
    git(repo, "update-ref", "--stdin", input="".join(f"create refs/tags/v{i} {head}\n" for i in range(150)))
    return repo


def stale_repo(root: Path) -> Path:
    """What a killed git gc leaves: gc.pid of a dead process, an old packed-refs.lock."""
    repo = refs_repo(root, "stale")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (repo / "gc.pid").write_text(f"{dead.pid} {os.uname().nodename}")
    lock = repo / "packed-refs.lock"
    lock.write_text("")
    for path in (lock, repo / "gc.pid"):
        os.utime(path, (OLD, OLD))
    return repo


def reachable(repo: Path) -> list[str]:
    return sorted(git(repo, "rev-list", "--objects", "--all").splitlines())


def counted(repo: Path) -> dict[str, int]:
    out = git(repo, "count-objects", "-v")
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


POLICY = """\
apiVersion: opsagent/v1
kind: maintenance
metadata: {{name: git-housekeeping}}
targets: [all]
spec:
{window}  git:
    repositories: ["{root}/srv/*.git", "{root}/srv/**/*.git"]
    fsck: {{frequency: 1w}}
"""


def write(root: Path, window: str = "") -> None:
    (root / "p.yml").write_text(POLICY.format(root=root, window=window))


def run(root: Path, command: str = "apply", env: dict[str, str] | None = None
        ) -> tuple[int, dict[str, Any]]:
    args = [sys.executable, "-m", "agent", command, "p.yml", "-i", "@local", "--json", "--diff",
            "--state-dir", str(root / "state")]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.stdout, done.stderr
    ops = json.loads(done.stdout)["hosts"][0]["ops"]
    op = next(o for o in ops if o["name"].startswith(ID))
    return done.returncode, op


def repos(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The REPO lines the program printed, by repository name (e.g. loose)."""
    found = {}
    for line in op.get("stdout", "").splitlines():
        if line.startswith("REPO "):
            entry = json.loads(line[5:])
            found[Path(entry["path"]).name.removesuffix(".git")] = entry
    return found


def test_only_what_is_needed_runs_reachable_objects_stay_and_a_second_apply_changes_nothing(
        tmp_path: Path) -> None:
    loose, old, young = loose_repo(tmp_path)
    many = packs_repo(tmp_path)
    refs = refs_repo(tmp_path)
    stale = stale_repo(tmp_path)
    held = bare(tmp_path, "nested/held")
    git(held, "update-ref", "refs/heads/main", commit(held, blobs(held, 1, "h"), "h"))
    tidy = bare(tmp_path, "tidy")
    git(tidy, "update-ref", "refs/heads/main", commit(tidy, blobs(tidy, 5, "t"), "t"))
    (tmp_path / "srv" / "link.git").symlink_to(tidy)
    write(tmp_path)
    every = [loose, many, refs, stale, held, tidy]
    before = {r: reachable(r) for r in every}
    assert counted(many)["packs"] == 60 and counted(loose)["count"] == 7342  # with tree, commit
    holder = subprocess.Popen(f"exec sleep 300 9>>{held}/packed-refs.lock", shell=True)
    try:
        time.sleep(0.3)
        files = snapshot(tmp_path / "srv")
        code, op = run(tmp_path, "plan")
        assert code == 0 and op["status"] == "changed", op
        assert snapshot(tmp_path / "srv") == files  # check mode wrote nothing, fsck neither
        assert f"would prune {loose} (7342 loose objects > 6700)" in op["diff"]

        code, op = run(tmp_path)
        assert code == 0 and op["status"] == "changed", op
        seen = repos(op)
        assert seen["loose"]["tasks"] == ["prune", "repack", "commit-graph"]
        assert seen["packs"]["tasks"] == ["repack", "commit-graph"]
        assert seen["refs"]["tasks"] == ["pack-refs"]
        assert seen["tidy"]["tasks"] == [] and seen["tidy"]["state"] == "healthy"
        assert seen["held"]["state"] == "locked"
        assert "packed-refs.lock is held by a running process" in seen["held"]["why"]
        assert sorted(seen["stale"]["cleared"]) == ["gc.pid", "packed-refs.lock"]
        assert f"cleared stale lock packed-refs.lock of {stale}" in op["diff"]
        assert f"skipped {tmp_path}/srv/link.git: a symlink, not followed" in op["diff"]
        assert (held / "packed-refs.lock").exists()  # a live process holds it

        for repo in every:
            assert reachable(repo) == before[repo], repo
            assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full", "--no-dangling"],
                                  capture_output=True, env=ENV).returncode == 0, repo
        assert counted(many)["packs"] <= 2
        assert counted(loose)["count"] <= len(young)
        assert subprocess.run(["git", "--git-dir", str(loose), "cat-file", "-e", old[0]],
                              env=ENV).returncode != 0  # old unreachable: pruned
        assert git(loose, "cat-file", "-t", young[0]) == "blob"  # young: kept
        assert not any((refs / "refs" / "tags").iterdir())  # every tag in packed-refs
        assert (loose / "objects" / "info" / "commit-graph").is_file()

        code, op = run(tmp_path)
        assert code == 0 and op["status"] == "ok", op
        assert {e["state"] for name, e in repos(op).items() if name != "held"} == {"healthy"}
        read = [loose, many, refs, stale, tidy]  # held is locked: not read; link.git not followed
        size = 1024 * sum(counted(r)["size"] + counted(r)["size-pack"] for r in read)
        db = tmp_path / "state" / "state.db"
        text = exposition(db, registry_for(db)).decode()
        assert (f'opsagent_maintenance_git_size_bytes{{host="@local",policy="git-housekeeping"}} '
                f'{floatToGoString(size)}') in text, text  # type: ignore[no-untyped-call]
    finally:
        holder.kill()
        holder.wait()
    code, op = run(tmp_path)  # the holder gone but its lock young: still not touched
    assert repos(op)["held"]["state"] == "locked" and "s old" in repos(op)["held"]["why"]


def test_a_corrupt_repository_fails_fsck_gets_no_task_and_the_others_are_still_done(
        tmp_path: Path) -> None:
    refs = refs_repo(tmp_path)
    broken = bare(tmp_path, "broken")
    shas = blobs(broken, 3, "b")
    git(broken, "update-ref", "refs/heads/main", commit(broken, shas, "b"))
    git(broken, "update-ref", "--stdin", input="".join(
        f"create refs/tags/t{i} {git(broken, 'rev-parse', 'main')}\n" for i in range(150)))
    victim = broken / "objects" / shas[1][:2] / shas[1][2:]
    victim.chmod(0o644)
    victim.write_bytes(b"not a zlib stream")
    write(tmp_path)
    code, op = run(tmp_path)
    assert code == 2 and op["status"] == "failed", op
    seen = repos(op)
    assert seen["broken"]["state"] == "fsck-failing" and seen["broken"]["tasks"] == []
    assert any((broken / "refs" / "tags").iterdir())  # no writing task on a failing repository
    assert seen["refs"]["tasks"] == ["pack-refs"] and not any((refs / "refs" / "tags").iterdir())
    code, op = run(tmp_path)  # fsck again at every run while it fails
    assert op["status"] == "failed" and f"fsck {broken}: FAILED" in op["diff"]
    report = opsagent(tmp_path, "report", "--state-dir", str(tmp_path / "state"))
    assert str(broken) in report.stdout and "fsck-failing" in report.stdout, report.stdout


@pytest.mark.skipif(not Path(FAKETIME).exists(), reason="libfaketime (Debian: faketime) not installed")
def test_outside_its_window_a_run_reports_what_is_pending_and_changes_nothing(tmp_path: Path) -> None:
    loose, _, _ = loose_repo(tmp_path)
    stale = stale_repo(tmp_path)
    write(tmp_path, '  window: {days: [sat, sun], start: "02:00", duration: 3h, timezone: Europe/Rome}\n')
    files = snapshot(tmp_path / "srv")
    for moment in ("2026-12-02 12:00:00", "2026-12-05 00:59:00", "2026-12-06 04:00:00"):  # UTC
        code, op = run(tmp_path, env={"LD_PRELOAD": FAKETIME, "FAKETIME": f"@{moment}",
                                      "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        assert code == 0 and op["status"] == "ok", op
        assert "outside its window: closed, opens Sat 2026-12-05 02:00 Europe/Rome" in op["name"] \
            or "opens Sat 2026-12-12 02:00" in op["name"], op["name"]
        assert f"would prune {loose}" in op["diff"] and "would clear stale lock" in op["diff"]
        assert snapshot(tmp_path / "srv") == files
    code, op = run(tmp_path, env={"LD_PRELOAD": FAKETIME, "FAKETIME": "@2026-12-05 01:30:00",
                                  "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    assert code == 0 and op["status"] == "changed" and op["name"] == ID, op  # 02:30 in Rome
    assert f"pruned {loose}" in op["diff"] and not (stale / "gc.pid").exists()
