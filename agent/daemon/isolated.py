"""Reloads validated in a child process, so that no policy set can take the daemon down.

Whatever the files contain (a parser bug, a template that eats memory or CPU, a crash
in a library), the child fails, not the daemon: the child runs under memory and CPU
limits and a timeout, and its answer is one JSON document on stdout. A child that
dies or overruns is reported as one problem; the daemon keeps its last good set. The
daemon's loop polls the child (Validation.poll), so it never waits for it.

The accepted set's description is also kept beside its copy (`set.json`), so that a
daemon restarted while the files are broken resumes the last good set.

    python -m agent.daemon.isolated   reads {"paths", "inventory", "templates",
                                      "state_dir"} on stdin, answers on stdout
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.daemon.policyset import PolicySet, Scheduled, load_set
from agent.errors import Problem, Problems
from agent.policy.model import Schedule

MEMORY_BYTES = 2 * 1024**3
CPU_SECONDS = 120
TIMEOUT = 180.0
DESCRIPTION = "set.json"


def _limit() -> None:  # in the child, before it runs Python
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def describe(policy_set: PolicySet) -> dict[str, Any]:
    return {"root": str(policy_set.root), "digest": policy_set.digest,
            "unscheduled": list(policy_set.unscheduled), "paths": list(policy_set.paths),
            "policies": [{**asdict(p), "schedule": p.schedule.model_dump()}
                         for p in policy_set.policies]}


def from_description(data: dict[str, Any]) -> PolicySet:
    policies = tuple(Scheduled(p["name"], p["kind"], p["mode"],
                               Schedule.model_validate(p["schedule"]), tuple(p["hosts"]),
                               p.get("fingerprint", ""))
                     for p in data["policies"])
    return PolicySet(Path(data["root"]), data["digest"], policies, tuple(data["unscheduled"]),
                     tuple(data.get("paths", ["policies"])))  # a set from before includes


class Validation:
    """load_set() under way in a limited child process; the daemon's loop polls it."""

    def __init__(self, paths: list[Path], inventory: str, templates: Path, state_dir: Path,
                 why: str, trial: bool = False) -> None:
        self.why = why
        self.trial = trial  # its outcome accepts or rejects the pulled commit on trial
        self.where = str(paths[0]) if paths else inventory
        request = {"paths": [str(p) for p in paths], "inventory": inventory,
                   "templates": str(templates), "state_dir": str(state_dir)}
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll() or kill())
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        self.deadline = time.monotonic() + TIMEOUT
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.daemon.isolated"],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=self.err,
                                     preexec_fn=_limit)
        assert self.proc.stdin is not None
        with self.proc.stdin:
            self.proc.stdin.write(json.dumps(request).encode())

    def poll(self) -> PolicySet | None:
        """The set once the child is done (raises Problems if it failed); None meanwhile."""
        if self.proc.poll() is None:
            if time.monotonic() < self.deadline:
                return None
            self.kill()
            raise Problems([Problem(self.where, 0, 0, "", "", f"validating the policy set "
                                                              f"took longer than {TIMEOUT:g} s; refused")])
        self.out.seek(0)
        self.err.seek(0)
        stdout, stderr = self.out.read().decode(errors="replace"), self.err.read().decode(errors="replace")
        self.out.close()
        self.err.close()
        try:
            answer = json.loads(stdout)
        except ValueError:
            lines = stderr.strip().splitlines()
            why = lines[-1] if lines else f"exit status {self.proc.returncode}"
            raise Problems([Problem(self.where, 0, 0, "", "", f"validating the policy set "
                                                              f"failed ({why}); refused")]) from None
        if "problems" in answer:
            raise Problems(Problem(**p) for p in answer["problems"])
        policy_set = from_description(answer["set"])
        (policy_set.root / DESCRIPTION).write_text(json.dumps(answer["set"]))
        return policy_set

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()


def last_good(state_dir: Path, digest: str) -> PolicySet | None:
    """A set accepted before (by an earlier daemon), read from its copy's description."""
    path = state_dir / "sets" / digest / DESCRIPTION
    try:
        return from_description(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main() -> int:
    request = json.load(sys.stdin)
    try:
        policy_set = load_set([Path(p) for p in request["paths"]], request["inventory"],
                              Path(request["templates"]), Path(request["state_dir"]))
    except Problems as e:
        print(json.dumps({"problems": [asdict(p) for p in e.problems]}))
        return 0
    except (MemoryError, RecursionError) as e:
        where = request["paths"][0] if request["paths"] else request["inventory"]
        problem = Problem(where, 0, 0, "", "", f"validating the policy set needs too much "
                                                f"{'memory' if isinstance(e, MemoryError) else 'nesting'}")
        print(json.dumps({"problems": [asdict(problem)]}))
        return 0
    print(json.dumps({"set": describe(policy_set)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
