"""Secrets as a hostile reader looks for them: a known value searched for in every output
(terminal, --json, report, audit log, history), the state directory (the WAL included),
the daemon's log, and found nowhere but in the files the policy writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, wait_for
from tests.support.project import opsagent

DB_PASS = "s3cret-DBpass-77"
TOKEN = "tok-XY99123-abc"
FILE_PASS = "filepass-Zq81-q"

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: app}
targets: [all]
schedule: {every: 1s}
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
    - name: app config
      files.template:
        src: app.conf.j2
        dest: "{{ sandbox }}/app.conf"
        password: {env: DB_PASS}
        key: {file: "%s"}
    - name: token line
      files.line: {path: "{{ sandbox }}/env", line: "TOKEN={{ token }}"}
    - name: say it
      server.shell: {commands: ["echo said {{ token }}; echo {{ token }} >&2"]}
    - name: tick
      server.shell: {commands: ["date >> {{ sandbox }}/ticks"]}
"""

FAILING = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: loud}
targets: [all]
spec:
  tasks:
    - name: fails with the token
      server.shell: {commands: ["echo {{ token }} >&2; exit 3"]}
      sensitive: false
"""


def project(root: Path) -> Path:
    (root / "policies").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "secret").write_text(FILE_PASS + "\n")
    (root / "templates" / "app.conf.j2").write_text(
        "password={{ password }}\nkey={{ key }}\napi={{ token }}\n")
    (root / "policies" / "app.yml").write_text(POLICY % (root / "secret"))
    (root / "policies" / "loud.yml").write_text(FAILING)
    (root / "inventory.yml").write_text(
        f"vars: {{sandbox: {root / 'sandbox'}, token: {{env: TOKEN}}}}\n"
        "hosts: {'@local': {}}\n")
    (root / "agent.yml").write_text("policies: [policies]\ninventory: inventory.yml\n"
                                    "state_dir: state\nlog_format: json\n")
    return root


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DB_PASS", DB_PASS)
    monkeypatch.setenv("TOKEN", TOKEN)
    yield


def leaks(root: Path, outputs: list[str]) -> list[str]:
    """Where a secret value is found, other than the files the policy writes."""
    found = []
    values = [v.encode() for v in (DB_PASS, TOKEN, FILE_PASS)]
    for n, text in enumerate(outputs):
        found += [f"output {n}: {text[:200]}" for v in values if v in text.encode()]
    for path in root.rglob("*"):
        if path.is_file() and "sandbox" not in path.parts and path.name != "secret":
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {v.decode()}" for v in values if v in data]
    return found


def test_secrets_reach_the_host_and_nothing_else(tmp_path: Path, env: None) -> None:
    root = project(tmp_path)
    inv = ("-i", "inventory.yml", "--state-dir", "state")
    outputs = []
    for command in (["plan", "policies", "--diff"], ["apply", "policies", "--diff"],
                    ["apply", "policies", "--diff", "--json"]):
        proc = opsagent(root, *command, *inv)
        failing = 0 if command[0] == "plan" else 2  # `loud` fails, on purpose
        assert proc.returncode == failing, proc.stdout + proc.stderr
        outputs += [proc.stdout, proc.stderr]
        (root / "sandbox").mkdir(exist_ok=True)
        (root / "sandbox" / "app.conf").write_text("password=old-one\n")  # a diff each time
    conf = (root / "sandbox" / "app.conf").read_text()
    assert conf == "password=old-one\n"
    proc = opsagent(root, "apply", "policies", "--policy", "app", *inv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "sandbox" / "app.conf").read_text() == (
        f"password={DB_PASS}\nkey={FILE_PASS}\napi={TOKEN}\n")
    assert (root / "sandbox" / "env").read_text() == f"TOKEN={TOKEN}\n"
    assert "(sensitive: diff hidden; sha256 " in outputs[0] + outputs[2]
    result = json.loads(outputs[4])
    ops = {op["name"]: op for op in result["hosts"][0]["ops"]}
    assert ops["app config"]["diff"].startswith("(sensitive: diff hidden; sha256 ")
    assert ops["say it"]["stdout"] == "" and ops["tick"]["stdout"] == ""
    assert "********" in ops["fails with the token"]["error"]
    for command in (["report", "--format", "json"], ["report", "--format", "html"],
                    ["report", "--format", "junit"], ["audit", "log"], ["audit", "verify"],
                    ["history"], ["status"]):
        shown = opsagent(root, *command, "--state-dir", "state")
        outputs += [shown.stdout, shown.stderr]
    with sqlite3.connect(root / "state" / "state.db") as db:
        diffs = [d for (d,) in db.execute("SELECT diff FROM audit WHERE step = 'app config'")]
    assert [d[:23] for d in diffs] == ["(sensitive: diff hidden"] * 2 + [""]  # no --diff: none

    d = Daemon(root)
    try:
        d.up()
        wait_for(lambda: len((root / "sandbox" / "ticks").read_text().splitlines()) >= 4,
                 what="the daemon's first run")
        wait_for(lambda: d.count("run_finished") >= 1, what="the run's log line")
        outputs += [d.get("/metrics")[1]]
        # the store is open in the daemon: its WAL is there to search
        assert d.stop() == 0
    finally:
        d.stop()
    assert leaks(root, outputs) == []


def test_a_missing_secret_is_a_clear_error_naming_the_reference(tmp_path: Path,
                                                                 env: None) -> None:
    root = project(tmp_path)
    (root / "secret").unlink()
    proc = opsagent(root, "plan", "policies", "-i", "inventory.yml", "--state-dir", "state")
    assert proc.returncode == 1
    assert (f"policies/app.yml:15:14: tasks 'app' > spec.tasks[1].files.template.key: cannot "
            f"read secret file {root / 'secret'}: No such file or directory") in proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "sandbox").exists()


HOOKED = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: shell}
targets: ["@local"]
spec:
  tasks:
    - server.shell: {commands: ["env > %(root)s/task-env"]}
---
apiVersion: opsagent/v1
kind: backup
metadata: {name: backup}
targets: ["@local"]
spec:
  repository: %(root)s/repo
  passphrase: {env: BORG_PASS_UNDER_TEST}
  sources: [%(root)s/policies]
  hooks: {before: ["env > %(root)s/hook-env"]}
"""


def test_commands_and_hooks_on_local_get_only_what_they_are_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BORG_PASS_UNDER_TEST", "borg-pass-7781")
    monkeypatch.setenv("CONTROLLER_ONLY", "the-controllers-own")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yml").write_text(HOOKED % {"root": tmp_path})
    done = opsagent(tmp_path, "apply", "policies", "-i", "@local", "--state-dir", "state")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("task-env", "hook-env"):
        seen = dict(line.split("=", 1) for line in (tmp_path / name).read_text().splitlines()
                    if "=" in line)
        assert "PATH" in seen and "HOME" in seen
        assert "CONTROLLER_ONLY" not in seen and "BORG_PASS_UNDER_TEST" not in seen, name
        assert "borg-pass-7781" not in seen.values()
    # borg itself got the passphrase: the archive is there
    listing = subprocess.run(["borg", "list", "--short", str(tmp_path / "repo")],
                             env={**os.environ, "BORG_PASSPHRASE": "borg-pass-7781"},
                             capture_output=True, text=True, check=True)
    assert len(listing.stdout.splitlines()) == 1


def test_policy_text_cannot_drive_the_terminal(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yml").write_text(
        'apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: t}\ntargets: ["@local"]\n'
        'spec:\n  tasks:\n    - name: "ok\\e[2J\\e]0;owned\\a gnp.exe\\u202etxt"\n'
        '      server.shell: {commands: ["printf \'\\\\033[31mred\\\\n\' >&2; exit 1"]}\n')
    done = opsagent(tmp_path, "apply", "policies", "-i", "@local", "--state-dir", "state")
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "ok\\x1b[2J\\x1b]0;owned\\x07 gnp.exe\\u202etxt: failed" in out
    assert "\n    red\n" in out  # a host's colours never reach the terminal raw
    history = opsagent(tmp_path, "audit", "log", "--state-dir", "state").stdout
    assert "\x1b" not in history
