"""The sync host program's first part: git in the work mirror, retries, where refs are
kept and how they are named, and each repository's output (its lines, and the notices
that need a person), kept per thread since repositories are synced side by side.

The program's parts (git_repo.py, git_merge.py, git_tags.py, git_branches.py,
git_push.py, git_sync.py) are joined into one text by plan.program() and run with
python3 on the host: standard library and git only.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Any

REMOTES = "refs/opsagent/remotes"  # + REMOTE/BRANCH: the heads fetched from each remote
TAGS = "refs/opsagent/tags"  # + REMOTE/TAG: the tags fetched from each remote
Data = dict[str, Any]
# what git says when the network, not the request, failed: worth another try
TRANSIENT = ("Could not resolve host", "Connection refused", "Connection timed out",
             "Connection reset", "Connection closed", "early EOF", "hung up unexpectedly",
             "Broken pipe", "Temporary failure", "Network is unreachable",
             "kex_exchange_identification", "timed out")


class Output(threading.local):
    """What the repository this thread syncs has to say."""

    def __init__(self) -> None:
        self.lines: list[str] = []  # what it did (stdout)
        self.notices: list[str] = []  # what needs a person (stderr)
        self.summary: Data = {}  # the SUMMARY observe reads


OUT = Output()


def say(line: str) -> None:
    OUT.lines.append(line)


def notice(line: str) -> None:
    OUT.notices.append(line)


class Git:
    def __init__(self, mirror: str, env: dict[str, str], retries: int = 0,
                 retry_wait: float = 0.0) -> None:
        self.mirror, self.env = mirror, env
        self.retries, self.retry_wait = retries, retry_wait

    def run(self, *args: str, stdin: str = "", cwd: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        where = ["-C", cwd] if cwd else ["-C", self.mirror]
        return subprocess.run(["git", *where, *args], input=stdin, env=self.env,
                              capture_output=True, text=True, check=False)

    def remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command that talks to a remote: retried with backoff (retry_wait, doubled each
        time) while it fails the way a network fails."""
        wait = self.retry_wait
        for attempt in range(self.retries + 1):
            done = self.run(*args)
            if done.returncode == 0 or attempt == self.retries or not transient(done):
                return done
            say(f"retrying git {args[0]} in {wait:g}s: {first_line(done.stderr)}")
            time.sleep(wait)
            wait *= 2
        return done

    def refs(self, prefix: str) -> dict[str, str]:
        done = self.run("for-each-ref", "--format=%(refname) %(objectname)", prefix + "/")
        return {name[len(prefix) + 1:]: sha for name, sha in
                (line.split() for line in done.stdout.splitlines() if line.strip())}

    def is_ancestor(self, old: str, new: str) -> bool:
        return old == new or self.run("merge-base", "--is-ancestor", old, new).returncode == 0

    def update_refs(self, refs: dict[str, str]) -> None:
        """Set each ref to its sha, or delete it where the sha is empty."""
        if refs:
            lines = "".join(f"update {name} {sha}\n" if sha else f"delete {name}\n"
                            for name, sha in refs.items())
            self.run("update-ref", "--stdin", stdin=lines)


def transient(done: subprocess.CompletedProcess[str]) -> bool:
    """Whether a failure looks like the network's, not a refusal (a push the remote or
    its lease rejected says "hung up" too)."""
    if "rejected]" in done.stdout + done.stderr or "atomic push failed" in done.stderr:
        return False
    return any(text in done.stderr for text in TRANSIENT)


def short(sha: str) -> str:
    return sha[:10]


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def listed_refs(stdout: str) -> dict[str, str]:
    """ls-remote's refs (without the peeled ^{} lines of annotated tags)."""
    return {name: sha for sha, name in (line.split() for line in stdout.splitlines()
                                        if line.strip()) if not name.endswith("^{}")}


def mirror_of(job: Data) -> str:
    return os.path.join(str(job["workdir"]), f"{job['repo']}.git")


def urls_of(job: Data) -> dict[str, str]:
    return {r["name"]: r["url"].replace("{repo}", job["repo"]) for r in job["remotes"]}


def tracking(remote: str, ref: str) -> str:
    """Where the mirror keeps remote's ref as last fetched."""
    if ref.startswith("refs/tags/"):
        return f"{TAGS}/{remote}/{ref.removeprefix('refs/tags/')}"
    return f"{REMOTES}/{remote}/{ref.removeprefix('refs/heads/')}"


def shown(ref: str) -> str:
    return f"tag {ref[len('refs/tags/'):]}" if ref.startswith("refs/tags/") else (
        ref.removeprefix("refs/heads/"))
