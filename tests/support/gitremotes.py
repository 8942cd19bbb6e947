"""Remotes for the sync kind's tests: bare repositories under one folder, a clone that
makes the commits, a policy on @local, and its runs with their results by operation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.kinds.sync.plan import program
from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: sync
metadata: {{name: repos}}
targets: ["@local"]
spec:
  workdir: {root}/work
  remotes:
    - {{name: public, url: "{root}/public/{{repo}}.git"}}
    - {{name: internal, url: "{root}/internal/{{repo}}.git"}}
    - {{name: dr, url: "{root}/dr/{{repo}}.git", push_only: true}}
  repositories: [api, web]
  deletions: {deletions}
{extra}"""
REMOTES = ("public", "internal", "dr")
SYNC = "sync repositories"  # the one operation of a sync policy's run
MERGE: dict[str, object] = {"match": "main", "strategy": "merge", "verify": None, "timeout": 60,
                            "resolve": [], "options": []}
JOB = {"check": False, "deletions": "keep",
       "rules": [MERGE, {"match": "*", "strategy": "ff-only"}],
       "tags": {"sync": True, "on_conflict": "report"}, "committer": ["t", "t@t"],
       "retries": 0, "retry_wait": 0, "keep_snapshots": 86400, "concurrency": 2}  # its job
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check,
                          env=ENV)
    return done.stdout.strip()


class Project:
    def __init__(self, root: Path, deletions: str = "keep", extra: str = "") -> None:
        self.root = root
        for remote in REMOTES:
            for repo in ("api", "web"):
                git("init", "-q", "--bare", str(root / remote / f"{repo}.git"))
        self.clone = root / "clone"
        git("init", "-q", str(self.clone))
        (root / "p.yml").write_text(POLICY.format(root=root, deletions=deletions, extra=extra))

    def commit(self, message: str) -> str:
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone)

    def change(self, files: dict[str, str], message: str, on: str = "") -> str:
        """A commit that writes files, on top of on (default: the clone's HEAD)."""
        if on:
            git("checkout", "-q", "--detach", on, cwd=self.clone)
        for name, text in files.items():
            (self.clone / name).parent.mkdir(parents=True, exist_ok=True)
            (self.clone / name).write_text(text)
        git("add", "-A", cwd=self.clone)
        git("commit", "-q", "-m", message, cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone)

    def push(self, remote: str, sha: str, branch: str = "main", repo: str = "api") -> None:
        git("push", "-q", "--force", str(self.root / remote / f"{repo}.git"),
            f"{sha}:refs/heads/{branch}", cwd=self.clone)

    def heads(self, repo: str = "api") -> dict[str, dict[str, str]]:
        out = {}
        for remote in REMOTES:
            listed = git("ls-remote", "--heads", str(self.root / remote / f"{repo}.git"))
            out[remote] = {name.removeprefix("refs/heads/"): sha
                           for sha, name in (line.split() for line in listed.splitlines())}
        return out

    def refs(self, prefix: str) -> dict[str, str]:
        listed = git("-C", str(self.root / "work" / "api.git"), "for-each-ref",
                     "--format=%(refname) %(objectname)", prefix)
        return dict(line.split() for line in listed.splitlines())

    def run(self, command: str = "apply", *args: str) -> tuple[int, dict[str, Any]]:
        done = opsagent(self.root, command, "p.yml", "-i", "@local", "--json", "--diff",
                        "--state-dir", str(self.root / "state"), *args)
        assert done.stdout, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return done.returncode, {op["name"]: op for op in result["hosts"][0]["ops"]}


def host_program(tmp_path: Path) -> list[str]:
    """The command that runs the host program as the kind sends it (its parts joined)."""
    path = tmp_path / "git_sync.py"
    path.write_text(program())
    return [sys.executable, str(path)]
