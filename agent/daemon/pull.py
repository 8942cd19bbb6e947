"""Pull mode: the policy repository fetched before each cycle, fast-forwards only.

A new commit is exported to a folder of its own and offered to the daemon; it becomes
the good commit only if the policy set in it validates. A commit that is not a
fast-forward of the good one (a force-push, a rewritten branch) is refused, and so is
one that fails validation: the last good checkout keeps running. The good commit is
kept as a ref in the local bare repository, so a restart resumes from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

GOOD = "refs/opsagent/good"
FETCHED = "refs/opsagent/fetched"


class PullError(RuntimeError):
    pass


class Puller:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url, _, self.branch = url.partition("#")
        self.workdir = workdir
        self.repo = workdir / "repo.git"
        self.good: str | None = None
        self.candidate: str | None = None
        self.refused: str | None = None
        if (self.repo / "HEAD").exists():
            self.good = self._rev(GOOD)
            if self.good and not self._dir(self.good).is_dir():
                self._export(self.good)

    @property
    def checkout(self) -> Path | None:
        """The folder to load policies from: the commit on trial, else the good one."""
        commit = self.candidate or self.good
        return self._dir(commit) if commit else None

    def fetch(self) -> bool:
        """Fetch; True if a new fast-forward commit is now on trial (see accept/reject)."""
        if not (self.repo / "HEAD").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare")
        source = f"refs/heads/{self.branch}" if self.branch else "HEAD"
        self._git("fetch", "--quiet", "--no-tags", "--force", "--", self.url, f"+{source}:{FETCHED}")
        new = self._rev(FETCHED)
        if new is None or new in (self.good, self.refused):
            return False
        if self.good and not self._is_ancestor(self.good, new):
            self.refused = new
            raise PullError(f"{self.url} {self.branch or 'HEAD'} is now {new[:12]}, which does "
                            f"not contain {self.good[:12]}: not a fast-forward, refused; "
                            f"keeping {self.good[:12]}")
        self._export(new)
        self.candidate = new
        return True

    def accept(self) -> None:
        if self.candidate is None:
            return
        self._git("update-ref", GOOD, self.candidate)
        old, self.good, self.candidate = self.good, self.candidate, None
        if old and old != self.good:
            shutil.rmtree(self._dir(old), ignore_errors=True)

    def reject(self) -> None:
        if self.candidate is None:
            return
        shutil.rmtree(self._dir(self.candidate), ignore_errors=True)
        self.refused, self.candidate = self.candidate, None

    def _dir(self, commit: str) -> Path:
        return self.workdir / "checkouts" / commit

    def _export(self, commit: str) -> None:
        target = self._dir(commit)
        if target.is_dir():
            return
        tmp = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".export-"))
        try:
            archive = tmp / "tree.tar"
            self._git("archive", "--format=tar", f"--output={archive}", commit)
            (tmp / "tree").mkdir()
            done = subprocess.run(["tar", "-x", "--no-same-owner", "-f", str(archive), "-C",
                                   str(tmp / "tree")], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PullError(f"unpacking {commit[:12]}: {done.stderr.strip()}")
            target.parent.mkdir(parents=True, exist_ok=True)
            (tmp / "tree").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _rev(self, ref: str) -> str | None:
        done = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "--verify", "--quiet",
                               f"{ref}^{{commit}}"], capture_output=True, text=True, check=False)
        return done.stdout.strip() or None

    def _is_ancestor(self, old: str, new: str) -> bool:
        done = subprocess.run(["git", "-C", str(self.repo), "merge-base", "--is-ancestor", old, new],
                              capture_output=True, check=False)
        return done.returncode == 0

    def _git(self, *args: str) -> None:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        try:
            done = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True,
                                  text=True, env=env, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            raise PullError(f"git {args[0]} {self.url}: no answer within 300 s") from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise PullError(f"git {args[0]} {self.url}: {lines[-1] if lines else done.returncode}")
