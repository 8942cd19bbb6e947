"""Runs a sequence of commands on the target host; the engine sends this file's source.

Standard library only (the host needs python3, as borg does). Reads one JSON line on
stdin: {"commands": [...], "env": {...}, "secret_env": {...}, "check": bool}, and
prints one JSON line per command as it ends: name, status (ok | changed | ran | failed |
skipped), rc, stdout, stderr, duration, attempts, note, warning. Secrets arrive only on
stdin and are given only to the commands marked `secrets`. Commands get an explicit
environment: the job's, over the few variables a login shell needs (KEEP) from the
process's own, never the rest (on @local that would be the controller's environment,
secrets and all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

TAIL = 20000  # characters of output kept per command (the last ones), unless it says
KEEP = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
        "SSH_AUTH_SOCK")
Data = dict[str, Any]


def kept(environ: dict[str, str]) -> dict[str, str]:
    """The variables of environ that commands are given: KEEP, LC_*, PYINFRA_*."""
    return {k: v for k, v in environ.items()
            if k in KEEP or k.startswith(("LC_", "PYINFRA_"))}


def main(job: Data) -> None:
    base = kept(dict(os.environ))
    base.update(job["env"])
    with_secrets = dict(base)
    with_secrets.update(job["secret_env"])
    state: Data = {"failed": False, "changed": False, "previous": "", "done": {}}
    for command in job["commands"]:
        env = with_secrets if command["secrets"] else base
        started = time.time()
        result = step(command, env, job["check"], state)
        result["name"] = command["name"]
        keep = command.get("keep") or TAIL
        result["stdout"], result["stderr"] = result["stdout"][-keep:], result["stderr"][-keep:]
        result["listing"] = command["listing"]
        result["duration"] = round(time.time() - started, 3)
        if result["status"] == "failed":
            state["failed"] = True
        if result["status"] in ("changed", "ran"):
            state["changed"] = True
        state["previous"] = state["done"][command["name"]] = result["status"]
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def step(command: Data, env: dict[str, str], check: bool, state: Data) -> Data:
    when = command["when"]
    if when in ("ok", "after_change") and state["failed"]:
        return skipped("an earlier step failed")
    if when == "failed" and not state["failed"]:
        return skipped("nothing failed")
    unmet = [name for name in command["needs"]
             if state["done"].get(name) in (None, "failed", "skipped")]
    if unmet:
        return skipped(f"needs {unmet[0]!r}, which did not succeed")
    if when == "after_change" and state["previous"] != "changed":
        return outcome("ok", note="nothing to do: the step before changed nothing")
    note = not_due(command)
    if note:
        return outcome("ok", note=note)
    attempts = 0
    while True:  # retries with backoff, unless the output says retrying cannot help
        attempts += 1
        done, failed_run = attempt(command, env, check, state)
        if failed_run is None or attempts > command["retries"]:
            break
        if command["permanent"] and re.search(command["permanent"], failed_run["out"]):
            break
        time.sleep(command["retry_wait"] * 2 ** (attempts - 1))
    if attempts > 1 and done["status"] == "failed":
        done["error"] += f" (after {attempts} attempts)"
    done["attempts"] = attempts
    return done


def attempt(command: Data, env: dict[str, str], check: bool, state: Data
            ) -> tuple[Data, Data | None]:
    """One try: the probe, then the command (or, in check mode, its read-only form).
    Returns the outcome and, when it failed, the failed run's output."""
    if command["unless"]:
        probe = run(command["unless"], env)
        if probe["rc"] == 0:
            return outcome("ok", note="already done"), None
        if command["missing"] and not re.search(command["missing"], probe["out"]):
            return failure(command, probe), probe
    if check:
        return judge(command, env, state)
    result = run(command["argv"], env)
    if not succeeded(command, result):
        return failure(command, result), result
    if command["stamp"]:
        touch(command["stamp"])
    warning = ""
    if result["rc"] != 0:
        warning = f"exit code {result['rc']} (warning): {last_lines(result['stderr'])}"
    return outcome(effect(command, result), result, warning=warning), None


def judge(command: Data, env: dict[str, str], state: Data) -> tuple[Data, Data | None]:
    """Check mode: only the command's read-only form runs, if it has one."""
    if command["check"] is None:  # it would run; a check that only reads would run too
        status = "ran" if command["effect"] == "ok" else command["effect"]
        return outcome(status, note=command["preview"]), None
    result = run(command["check"], env)
    if not succeeded(command, result):
        if state["changed"]:  # e.g. prune --dry-run on a repository not made yet
            return outcome(command["effect"], note="cannot be judged before the steps above"), None
        return failure(command, result), result
    return outcome(effect(command, result), result, note=command["preview"]), None


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


def outcome(status: str, result: Data | None = None, note: str = "", warning: str = "") -> Data:
    result = result or {"rc": 0, "stdout": "", "stderr": ""}
    return {"status": status, "rc": result["rc"], "stdout": result["stdout"],
            "stderr": result["stderr"], "note": note, "attempts": 1,
            "warning": warning}


def failure(command: Data, result: Data) -> Data:
    """A failed command; for commands with warning codes (borg) it says error, not warning."""
    kind = " (error)" if command["warning"] else ""
    text = f"exit code {result['rc']}{kind}: {last_lines(result['stderr'] or result['stdout'])}"
    done = outcome("failed", result)
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
    """What a person needs of a command's output: its first and last lines (borg says what
    went wrong first and sums up last); of a Python traceback (borg prints one on
    unexpected errors), the message before it and the exception it ended with."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines)
              if line.startswith(("Traceback (most recent call last)", "Local Exception"))]
    if starts:
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]
        lines = lines[:starts[0]][-(count - 1):] + raised[-1:]
    if len(lines) > count:
        lines = [*lines[:count // 2], "...", *lines[-(count // 2):]]
    return "\n".join(lines)


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds) // size}{unit}"
    return f"{int(seconds)}s"


if __name__ == "__main__":  # as the host runs it (python3 -c); imported, it only lends kept()
    main(json.loads(sys.stdin.readline()))  # the engine sends this source, then the job
