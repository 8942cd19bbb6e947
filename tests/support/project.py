from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
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

LOCAL = "vars: {sandbox: %s}\nhosts: {'@local': {}}\n"
# A run to stop midway: the first command writes "1" and sleeps, the second writes "2".
SLOW = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: slow}
targets: [all]
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
    - name: first
      server.shell: {commands: ["echo 1 >> {{ sandbox }}/log; sleep 2"]}
    - name: second
      server.shell: {commands: ["echo 2 >> {{ sandbox }}/log"]}
"""


def write_project(root: Path, policy: str = POLICY) -> Path:
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "app.conf.j2").write_text("owner = {{ who }}\nport = 8080\n")
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "main.yml").write_text(policy)
    return root


def local_project(tmp_path: Path, policy: str = POLICY) -> Path:
    """A project in tmp_path/p converging @local, its sandbox tmp_path/sandbox."""
    root = write_project(tmp_path / "p", policy)
    (root / "inventory.yml").write_text(LOCAL % (tmp_path / "sandbox"))
    return root


def stop_midway(root: Path, state: Path, signum: int, env: dict[str, str] | None = None
                ) -> tuple[int, str, str]:
    """`opsagent apply --json` of SLOW (local_project), sent signum once its first command
    started: exit code, stdout, stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "agent", "apply", "policies", "-i",
                             "inventory.yml", "--state-dir", str(state), "--json"], cwd=root,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = root.parent / "sandbox" / "log"
    deadline = time.monotonic() + 30
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


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
