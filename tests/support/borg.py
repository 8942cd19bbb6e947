"""A backup project on @local with a real borg repository in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: backup
metadata: {{name: files}}
targets: ["@local"]
spec:
  repository: {repo}
  passphrase: {{file: {passfile}}}
  sources: [{source}]
{extra}
"""


@dataclass
class BorgProject:
    root: Path
    repo: Path

    @property
    def source(self) -> Path:
        return self.root / "data"

    @property
    def passfile(self) -> Path:
        return self.root / "borg.pass"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write(self, extra: str = "") -> None:
        (self.root / "policies").mkdir(parents=True, exist_ok=True)
        (self.root / "policies" / "backup.yml").write_text(POLICY.format(
            repo=self.repo, passfile=self.passfile, source=self.source, extra=extra))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return opsagent(self.root, *args, "-i", "@local", "--state-dir", str(self.state))

    def apply(self, *extra: str) -> tuple[int, dict[str, Any]]:
        proc = self.run("apply", "policies", "--json", *extra)
        assert proc.stderr == "", proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def borg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BORG_PASSCOMMAND": f"cat {self.passfile}"}
        return subprocess.run(["borg", *args], env=env, capture_output=True, text=True,
                              check=check, timeout=120)

    def archives(self) -> list[str]:
        listing = json.loads(self.borg("list", "--json", str(self.repo)).stdout)
        return [a["name"] for a in listing["archives"]]


def make(tmp_path: Path, extra: str = "", passphrase: str = "correct horse") -> BorgProject:
    project = BorgProject(tmp_path, tmp_path / "repo")
    project.source.mkdir(parents=True)
    (project.source / "notes.txt").write_text("backed up\n" * 100)
    project.passfile.write_text(passphrase + "\n")
    project.passfile.chmod(0o600)
    project.write(extra)
    return project


def ops(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The one host's operations by name."""
    [host] = result["hosts"]
    return {op["name"]: op for op in host["ops"]}
