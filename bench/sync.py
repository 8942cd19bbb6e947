"""opsagent's sync kind vs the plain mirror script, on 3 remotes x N repositories over SSH.

Run by hand (not in CI):  .venv/bin/python bench/sync.py [--repos 100] [--reps 3]

Each remote is its own loopback sshd (three servers, as three organisations would be),
holding N bare repositories of 20 commits. The plain script is what users schedule
today: for each repository, `git clone --mirror` from the first remote and `git push
--mirror` to the other two. Cases, interleaved (opsagent, plain, plain, opsagent ...):
(a) nothing changed; (b) 10 % of the repositories got a new commit on the first remote;
(c) 10 repositories whose main diverged (a commit on each of two remotes, different
files): opsagent merges them; the plain script overwrites one side. Printed: medians,
the ratio plain/opsagent, and the share of divergent branches opsagent merged without
a person.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import sshd  # noqa: E402

BIN = Path(sys.executable).parent
REMOTES = ("one", "two", "three")
ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
       "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          check=True).stdout.strip()


def make_remotes(work: Path, repos: int) -> None:
    seed = work / "seed"
    git("init", "-q", "-b", "main", str(seed))
    for i in range(20):
        (seed / f"file{i % 5}.txt").write_text(f"line {i}\n" * (i + 1))
        git("add", "-A", cwd=seed)
        git("commit", "-q", "-m", f"commit {i}", cwd=seed)
    for remote in REMOTES:
        for n in range(repos):
            git("clone", "-q", "--bare", str(seed), str(work / remote / f"r{n:03}.git"))


def commit_on(work: Path, remote: str, repo: str, name: str) -> None:
    """One new commit on main of remote's repo, writing file name."""
    clone = work / "scratch" / f"{remote}-{repo}"
    shutil.rmtree(clone, ignore_errors=True)
    git("clone", "-q", str(work / remote / f"{repo}.git"), str(clone))
    (clone / name).write_text(f"{name} {time.time()}\n")
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", f"change {name}", cwd=clone)
    git("push", "-q", "origin", "HEAD:main", cwd=clone)


def timed(fn: Callable[[], None]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    keys = sshd.Keys.make(work / "keys")
    servers = [sshd.Sshd(keys, work / f"sshd-{r}").start() for r in REMOTES]
    for server in servers:
        server.wait()
    try:
        run(work, keys, servers, args.repos, args.reps)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, keys: sshd.Keys, servers: list[sshd.Sshd], repos: int, reps: int) -> None:
    make_remotes(work, repos)
    user = os.environ.get("USER") or "root"
    urls = {r: f"ssh://{user}@127.0.0.1:{s.port}{work}/{r}/{{repo}}.git"
            for r, s in zip(REMOTES, servers, strict=True)}
    names = [f"r{n:03}" for n in range(repos)]
    (work / "sync.yml").write_text(
        "apiVersion: opsagent/v1\nkind: sync\nmetadata: {name: bench}\ntargets: ['@local']\n"
        f"spec:\n  workdir: {work}/mirror\n  remotes:\n"
        + "".join(f"    - {{name: {r}, url: '{u}'}}\n" for r, u in urls.items())
        + f"  repositories: [{', '.join(names)}]\n"
        "  branches: [{match: main, strategy: merge}, {match: '*'}]\n"
        f"  ssh_key: {{file: {keys.client}}}\n  known_hosts: {keys.known_hosts}\n")
    ssh = (f"ssh -i {keys.client} -o IdentitiesOnly=yes -o BatchMode=yes "
           f"-o UserKnownHostsFile={keys.known_hosts}")

    def opsagent() -> None:
        done = subprocess.run([str(BIN / "opsagent"), "apply", "sync.yml", "-i", "@local",
                               "--state-dir", str(work / "state"), "--diff"], cwd=work,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"opsagent failed:\n{done.stdout}\n{done.stderr}")

    def plain() -> None:
        script = "set -e\n" + "".join(
            f"rm -rf {work}/plain/{n}.git\n"
            f"git clone -q --mirror {shlex.quote(urls['one'].format(repo=n))} {work}/plain/{n}.git\n"
            + "".join(f"git -C {work}/plain/{n}.git push -q --mirror "
                      f"{shlex.quote(urls[r].format(repo=n))}\n" for r in REMOTES[1:])
            for n in names)
        subprocess.run(["sh", "-c", script], env={**ENV, "GIT_SSH_COMMAND": ssh}, check=True,
                       capture_output=True)

    opsagent()  # the first sync: every work mirror made
    cases: dict[str, dict[str, list[float]]] = {}
    step = 0

    def prepare(case: str) -> None:
        nonlocal step
        step += 1
        if case == "10% changed":
            for n in names[:: 10]:
                commit_on(work, "one", n, f"new-{step}.txt")
        elif case == "10 diverged":
            for n in names[:10]:
                commit_on(work, "one", n, f"ours-{step}.txt")
                commit_on(work, "two", n, f"theirs-{step}.txt")

    merged = diverged = 0
    for case in ("nothing changed", "10% changed", "10 diverged"):
        times: dict[str, list[float]] = {"opsagent": [], "plain": []}
        for rep in range(reps):
            for tool in (("opsagent", "plain") if rep % 2 == 0 else ("plain", "opsagent")):
                if case == "10 diverged" and tool == "plain":
                    continue  # it cannot merge; timed on the 10% case instead
                prepare(case)
                times[tool].append(timed(opsagent if tool == "opsagent" else plain))
                if tool == "opsagent" and case == "10 diverged":
                    diverged += 10
                    merged += sum(len(git("rev-list", "--parents", "-n1", "main",
                                          cwd=work / "one" / f"{n}.git").split()) == 3
                                  for n in names[:10])  # a merge commit, pushed back to one
                if tool == "plain":
                    opsagent()  # put every remote in step again for the next one
        cases[case] = times
    print(f"{repos} repositories x 3 remotes over SSH (3 loopback sshd), medians of {reps}:")
    for case, times in cases.items():
        ours = statistics.median(times["opsagent"])
        if times["plain"]:
            theirs = statistics.median(times["plain"])
            print(f"  {case:16} opsagent {ours:6.2f} s   plain mirror script {theirs:6.2f} s"
                  f"   plain/opsagent {theirs / ours:5.1f}x")
        else:
            print(f"  {case:16} opsagent {ours:6.2f} s   (the plain script cannot merge)")
    print(f"  divergent branches merged without a person: {merged}/{diverged}")


if __name__ == "__main__":
    main()
