"""What a sync policy runs on its host: one command for all its repositories.

The command is the host program (git_repo.py, git_merge.py, git_tags.py and git_sync.py
joined into one text, sent once in the command's environment; it needs only python3 and
git there) with the job as JSON. It syncs the repositories side by side, each on its own:
one that fails never stops the rest. Its output names each line's repository, and ends
each repository with its SUMMARY line (observe.py).
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Sequence, Step
from agent.kinds.program import join
from agent.kinds.sync.spec import SyncSpec

NAME = ID = "sync repositories"  # the command's title, and the id observe finds it by
KEY = "OPSAGENT_SYNC_SSH_KEY"
PROGRAM = "OPSAGENT_SYNC_PROGRAM"
QUIET = "^SUMMARY "  # each repository's summary: for observe, not for the diff
KEEP = 4_000_000  # characters of output read back: every repository's SUMMARY line
LAUNCH = f"import os; exec(compile(os.environ.pop({PROGRAM!r}), 'git_sync.py', 'exec'))"
CHANGED = (r"^[^:\s]+: (would )?(fast-forward(ed)?|delete(d)?|put back|push(ed)?|move(d)?|"
           r"rolled back|merge) ")
PARTS = ("git_repo.py", "git_merge.py", "git_tags.py", "git_branches.py", "git_push.py",
         "git_sync.py")
_OWN = "from agent.kinds.sync."


@cache
def program() -> str:
    """The host program: its parts (modules here, for mypy and tests) joined in order."""
    return join(Path(__file__).parent, PARTS, _OWN)


def plan(spec: SyncSpec, host: HostInfo) -> list[Step | Sequence]:
    run = _run_id()
    repos = list(spec.repositories)
    return _sequence(spec, "sync", Command(
        NAME, _argv(spec, repos, run, False), check=_argv(spec, repos, run, True),
        effect="changed", changed_if=CHANGED, warning=(2,), secrets=spec.ssh_key is not None,
        listing=True, quiet=QUIET, keep=KEEP, id=ID))


def rollback(spec: SyncSpec, repos: list[str], of_run: str) -> list[Step | Sequence]:
    """Put back, per repository, the heads the run of_run replaced (saving the ones it
    replaces in turn, so the rollback can be rolled back)."""
    run = _run_id()
    return _sequence(spec, "sync rollback", Command(
        f"roll back {', '.join(repos)} to before run {of_run}",
        _argv(spec, repos, run, False, of_run), effect="changed", changed_if=CHANGED,
        secrets=spec.ssh_key is not None, listing=True, quiet=QUIET, keep=KEEP, id=ID))


def _run_id() -> str:
    """The name this run's saved heads go under (refs/opsagent/backup/RUN/...)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _sequence(spec: SyncSpec, name: str, command: Command) -> list[Step | Sequence]:
    """The command in one call to the host, with the host program in its environment (sent
    once, not on its command line) and the SSH key (if any) in its secret environment."""
    secret_env = {KEY: spec.ssh_key} if spec.ssh_key is not None else {}
    return [Sequence(name, (command,), {PROGRAM: program()}, secret_env)]


def _argv(spec: SyncSpec, repos: list[str], run: str, check: bool, of_run: str = ""
          ) -> tuple[str, ...]:
    job = {"repos": repos, "concurrency": spec.concurrency, "workdir": spec.workdir,
           "run": run, "check": check, "rollback": of_run, "deletions": spec.deletions,
           "known_hosts": spec.known_hosts, "remotes": [r.model_dump() for r in spec.remotes],
           "rules": [b.model_dump(by_alias=True) for b in spec.branches],
           "tags": spec.tags.model_dump(), "committer": [spec.committer.name, spec.committer.email],
           "retries": spec.retries, "retry_wait": spec.retry_wait,
           "keep_snapshots": spec.keep_snapshots,
           "discover": spec.discover.model_dump() if spec.discover else None}
    return ("python3", "-c", LAUNCH, json.dumps(job, sort_keys=True))
