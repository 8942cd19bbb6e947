"""Runs a sequence of commands on the target host; the engine sends this file's source.

Standard library only (the host needs python3, as borg does). Reads one JSON line on
stdin: {"commands": [...], "env": {...}, "secret_env": {...}, "check": bool}, and
prints one JSON line per command as it ends: name, status (ok | changed | ran | failed |
skipped), rc, stdout, stderr, duration, attempts, note, warning. Secrets arrive only on
stdin and are given only to the commands marked `secrets`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

TAIL = 20000  # characters of output kept per command
Data = dict[str, Any]


def main(job: Data) -> None:
    base = dict(os.environ)
    base.update(job["env"])
    with_secrets = dict(base)
    with_secrets.update(job["secret_env"])
    state: Data = {"failed": False, "changed": False, "previous": ""}
    for command in job["commands"]:
        env = with_secrets if command["secrets"] else base
        started = time.time()
        result = step(command, env, job["check"], state)
        result["name"] = command["name"]
        result["listing"] = command["listing"]
        result["duration"] = round(time.time() - started, 3)
        if result["status"] == "failed":
            state["failed"] = True
        if result["status"] in ("changed", "ran"):
            state["changed"] = True
        state["previous"] = result["status"]
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def step(command: Data, env: dict[str, str], check: bool, state: Data) -> Data:
    when = command["when"]
    if when == "ok" and state["failed"]:
        return skipped("an earlier step failed")
    if when == "failed" and not state["failed"]:
        return skipped("nothing failed")
    if when == "after_change" and (state["failed"] or state["previous"] != "changed"):
        return outcome("ok", note="nothing to do: the step before changed nothing")
    note = not_due(command)
    if note:
        return outcome("ok", note=note)
    if command["unless"]:
        probe = run(command["unless"], env)
        if probe["rc"] == 0:
            return outcome("ok", note="already done")
        if command["missing"] and not re.search(command["missing"], probe["out"]):
            return failure(command, probe)
    if check:
        return judge(command, env, state)
    return execute(command, env)


def judge(command: Data, env: dict[str, str], state: Data) -> Data:
    """Check mode: only the command's read-only form runs, if it has one."""
    if command["check"] is None:  # it would run; a check that only reads would run too
        status = "ran" if command["effect"] == "ok" else command["effect"]
        return outcome(status, note=command["preview"])
    result = run(command["check"], env)
    if not succeeded(command, result):
        if state["changed"]:  # e.g. prune --dry-run on a repository not made yet
            return outcome(command["effect"], note="cannot be judged before the steps above")
        return failure(command, result)
    return outcome(effect(command, result), result, note=command["preview"])


def execute(command: Data, env: dict[str, str]) -> Data:
    attempts = 0
    while True:
        attempts += 1
        result = run(command["argv"], env)
        if succeeded(command, result):
            break
        permanent = command["permanent"] and re.search(command["permanent"], result["out"])
        if attempts > command["retries"] or permanent:
            return failure(command, result, attempts)
        time.sleep(command["retry_wait"] * 2 ** (attempts - 1))
    if command["stamp"]:
        touch(command["stamp"])
    warning = ""
    if result["rc"] != 0:
        warning = f"exit code {result['rc']} (warning): {last_lines(result['stderr'])}"
    return outcome(effect(command, result), result, attempts=attempts, warning=warning)


def not_due(command: Data) -> str:
    if not command["every"] or not command["stamp"]:
        return ""
    try:
        age = time.time() - os.stat(command["stamp"]).st_mtime
    except OSError:
        return ""
    if age >= command["every"]:
        return ""
    return f"not due: last ran {human(age)} ago, runs every {human(command['every'])}"


def run(argv: list[str], env: dict[str, str]) -> Data:
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              check=False)
    except OSError as e:
        return {"rc": 127, "stdout": "", "stderr": f"{argv[0]}: {e.strerror}",
                "out": e.strerror or ""}
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace")
    return {"rc": done.returncode, "stdout": stdout, "stderr": stderr, "out": stdout + stderr}


def succeeded(command: Data, result: Data) -> bool:
    return result["rc"] == 0 or result["rc"] in command["warning"]


def effect(command: Data, result: Data) -> str:
    if command["effect"] == "changed" and command["changed_if"]:
        return "changed" if re.search(command["changed_if"], result["out"], re.M) else "ok"
    return str(command["effect"])


def outcome(status: str, result: Data | None = None, note: str = "", attempts: int = 1,
            warning: str = "") -> Data:
    result = result or {"rc": 0, "stdout": "", "stderr": ""}
    return {"status": status, "rc": result["rc"], "stdout": result["stdout"][-TAIL:],
            "stderr": result["stderr"][-TAIL:], "note": note, "attempts": attempts,
            "warning": warning}


def failure(command: Data, result: Data, attempts: int = 1) -> Data:
    """A failed command; for commands with warning codes (borg) it says error, not warning."""
    kind = " (error)" if command["warning"] else ""
    text = f"exit code {result['rc']}{kind}: {last_lines(result['stderr'] or result['stdout'])}"
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    done = outcome("failed", result, attempts=attempts)
    done["error"] = text
    return done


def skipped(note: str) -> Data:
    return outcome("skipped", note=note)


def touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "a"):
        pass
    os.utime(path)


def last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds) // size}{unit}"
    return f"{int(seconds)}s"


main(json.loads(sys.stdin.readline()))  # the engine sends this source, then the job
