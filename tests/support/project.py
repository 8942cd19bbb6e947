from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: files}
targets: [all]
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
    - name: config
      files.template: {src: app.conf.j2, dest: "{{ sandbox }}/app.conf", who: "{{ host.name }}"}
    - name: line
      files.line: {path: "{{ sandbox }}/settings", line: "mode=fast"}
    - name: guarded
      server.shell: {commands: ["echo built > {{ sandbox }}/built"]}
      creates: "{{ sandbox }}/built"
    - name: unguarded
      server.shell: {commands: ["echo hello"]}
"""


def write_project(root: Path, policy: str = POLICY) -> Path:
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "app.conf.j2").write_text("owner = {{ who }}\nport = 8080\n")
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "main.yml").write_text(policy)
    return root


def opsagent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=root, capture_output=True,
                          text=True, timeout=300)


def run_json(root: Path, command: str, inventory: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = opsagent(root, command, "policies", "-i", str(inventory), "--json", *extra)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def statuses(result: dict[str, Any]) -> dict[str, list[str]]:
    return {h["host"]: [op["status"] for op in h["ops"]] for h in result["hosts"]}


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder below: mode and content hash."""
    out = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (path.stat().st_mode, digest)
    return out
