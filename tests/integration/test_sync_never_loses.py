"""Over seeded random histories (commits, force-pushes, deletions, new branches,
divergences and tag moves on random remotes, a sync after each, main merged where it
diverged), no commit any remote ever held becomes unreachable: each stays on some remote
or under the work mirror's kept and backup refs."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from tests.support.gitremotes import ENV, JOB, git, host_program

REMOTES = ("a", "b", "c")


def heads(repo: Path) -> dict[str, str]:
    listed = git("ls-remote", "--heads", "--tags", str(repo))
    return {name: sha for sha, name in (line.split() for line in listed.splitlines())
            if not name.endswith("^{}")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_commit_is_ever_lost(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    tagger = random.Random(seed + 100)  # its own: the branch moves stay as they were
    for remote in REMOTES:
        git("init", "-q", "--bare", str(tmp_path / remote / "r.git"))
    work = tmp_path / "clone"
    git("init", "-q", str(work))
    held: set[str] = set()  # every commit any remote held
    states: set[str] = set()
    tags: set[str] = set()
    sync = host_program(tmp_path)
    job = {**JOB, "repos": ["r"], "workdir": str(tmp_path / "work"),
           "remotes": [{"name": r, "url": str(tmp_path / r / "{repo}.git"), "push_only": r == "c"}
                       for r in REMOTES]}
    for step in range(25):
        for r in REMOTES:  # the clone has every commit (the sync's merges too)
            git("-C", str(work), "fetch", "-q", str(tmp_path / r / "r.git"),
                f"+refs/heads/*:refs/remotes/{r}/*")
        target = tmp_path / rng.choice(REMOTES) / "r.git"
        branch = rng.choice(["main", "dev", "topic"])
        now = heads(target)
        move = rng.random()
        if move < 0.15 and f"refs/heads/{branch}" in now:
            git("-C", str(work), "push", "-q", str(target), f":refs/heads/{branch}")
        elif move > 0.75 and "refs/heads/main" in heads(tmp_path / "a" / "r.git"):
            branch = "main"  # both sources move on from a's head, apart
            start = heads(tmp_path / "a" / "r.git")["refs/heads/main"]
            for r in ("a", "b"):
                sha = git("-C", str(work), "commit-tree", "-m", f"step {step} on {r}", "-p",
                          start, _empty_tree(work))
                git("-C", str(work), "push", "-q", "--force", str(tmp_path / r / "r.git"),
                    f"{sha}:refs/heads/{branch}")
        else:
            base = now.get(f"refs/heads/{branch}") or next(iter(held), None)
            if base and move < 0.3:  # a force-push back to an older commit
                base = git("-C", str(work), "rev-list", "--max-count=1", "--skip=1", base) or base
            args = ["commit-tree", "-m", f"step {step}", _empty_tree(work)]
            if base:
                args += ["-p", base]
            sha = git("-C", str(work), *args)
            git("-C", str(work), "push", "-q", "--force", str(target), f"{sha}:refs/heads/{branch}")
        if held and tagger.random() < 0.3:  # a tag set or moved on one remote
            tagged = tagger.choice(sorted(held))
            git("-C", str(work), "push", "-q", "--force", str(tmp_path / tagger.choice(REMOTES) /
                "r.git"), f"{tagged}:refs/tags/{tagger.choice(['v1', 'v2'])}")
        for r in REMOTES:
            held |= set(heads(tmp_path / r / "r.git").values())
        job["run"] = f"run{step}"
        done = subprocess.run([*sync, json.dumps(job)],
                              capture_output=True, text=True, env=ENV, check=False)
        assert "LOST" not in done.stdout + done.stderr, done.stdout + done.stderr
        for r in REMOTES:
            held |= set(heads(tmp_path / r / "r.git").values())
        reachable = set(git("-C", str(tmp_path / "work" / "r.git"), "rev-list",
                            "--all").splitlines())
        assert held <= reachable, f"step {step}: {sorted(held - reachable)} lost"
        summary = json.loads(done.stdout.split("SUMMARY ")[1])
        states.update(summary["branches"].values())
        tags.update(summary["tags"].values())
    assert {"fast-forward", "diverged", "rewritten"} <= states  # the histories did all that
    merges = git("-C", str(tmp_path / "a" / "r.git"), "rev-list", "--merges", "--count", "--all")
    assert int(merges) > 0  # and the sync merged divergences
    assert tags & {"pushed", "moved", "conflict"}  # and tags were spread or clashed


def _empty_tree(work: Path) -> str:
    return subprocess.run(["git", "-C", str(work), "hash-object", "-t", "tree", "-w", "--stdin"],
                          input="", capture_output=True, text=True, check=True, env=ENV).stdout.strip()


def test_a_push_that_raced_a_developer_is_refused_not_overwritten(tmp_path: Path) -> None:
    for remote in REMOTES:
        git("init", "-q", "--bare", str(tmp_path / remote / "r.git"))
    work = tmp_path / "clone"
    git("init", "-q", str(work))
    one = git("-C", str(work), "commit-tree", "-m", "one", _empty_tree(work))
    racer = git("-C", str(work), "commit-tree", "-m", "racer", "-p", one, _empty_tree(work))
    job = {**JOB, "repos": ["r"], "workdir": str(tmp_path / "work"), "run": "first",
           "deletions": "propagate",
           "remotes": [{"name": r, "url": str(tmp_path / r / "{repo}.git"), "push_only": False}
                       for r in ("a", "b")]}
    for r in ("a", "b"):
        git("-C", str(work), "push", "-q", str(tmp_path / r / "r.git"), f"{one}:refs/heads/topic")
    sync = host_program(tmp_path)
    assert subprocess.run([*sync, json.dumps(job)], env=ENV, check=False).returncode == 0
    git("-C", str(work), "push", "-q", str(tmp_path / "a" / "r.git"), ":refs/heads/topic")
    # the sync will delete topic on b too; a developer pushes to it between the sync's
    # fetch and its push: git, wrapped to do that once just before the sync's first push
    # (the push itself is real git's, with its lease)
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"if [ \"$3\" = push ] && [ ! -e {tmp_path}/raced ]; then touch {tmp_path}/raced; "
        f"/usr/bin/git -C {work} push -q {tmp_path}/b/r.git {racer}:refs/heads/topic; fi\n"
        "exec /usr/bin/git \"$@\"\n")
    wrapper.chmod(0o755)
    done = subprocess.run([*sync, json.dumps({**job, "run": "second"})], capture_output=True,
                          text=True, check=False,
                          env={**ENV, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert (tmp_path / "raced").exists()
    assert done.returncode == 1, done.stdout
    assert "push to b failed, nothing changed there" in done.stderr
    assert heads(tmp_path / "b" / "r.git") == {"refs/heads/topic": racer}  # the developer's
    assert "LOST" not in done.stderr
