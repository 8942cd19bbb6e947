"""A kind's Sequence run on one host in one remote call; each command becomes an OpResult.

The host runs `on_host.py`, sent with the job over the command's stdin: no file is left
on the host, and secrets never appear on a command line. Everything read back is
masked with the sequence's secrets before it leaves this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api import StringCommand

from agent.core.plans import PlannedStep
from agent.core.results import OpResult, Status
from agent.core.secrets import Secret, SecretError, mask
from agent.core.steps import Sequence

LAUNCH = "python3 -c 'import json,sys;exec(json.loads(sys.stdin.readline()))'"


@cache
def _source() -> str:
    return Path(__file__).with_name("on_host.py").read_text(encoding="utf-8")


def job(sequence: Sequence, check: bool) -> tuple[str, list[Secret]]:
    """The stdin for LAUNCH: this runner's source, then the job; and the secrets in it.

    Raises SecretError when a secret cannot be resolved."""
    secrets = {name: ref.resolve() for name, ref in sequence.secret_env.items()}
    data = {
        "commands": [asdict(c) for c in sequence.commands],
        "env": dict(sequence.env),
        "secret_env": {name: secret.reveal() for name, secret in secrets.items()},
        "check": check,
    }
    return json.dumps(_source()) + "\n" + json.dumps(data) + "\n", list(secrets.values())


def run(host: Any, planned: PlannedStep, check: bool) -> list[OpResult]:
    """Run the sequence; one OpResult per command, in order, even if the call failed."""
    sequence = planned.step
    assert isinstance(sequence, Sequence)
    try:
        stdin, secrets = job(sequence, check)
    except SecretError as e:
        return _keyed(sequence, _unfinished(planned, check, str(e), []))
    ok, output = host.run_shell_command(StringCommand(LAUNCH), _stdin=stdin, print_output=False,
                                        print_input=False)
    results: list[OpResult] = []
    for line in output.stdout_lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        results.append(_op(planned, data, check, secrets))
    if len(results) < len(sequence.commands):
        why = mask(output.stderr.strip(), secrets) or "the host stopped answering"
        results = _unfinished(planned, check, why, results)
    return _keyed(sequence, results)


def _keyed(sequence: Sequence, results: list[OpResult]) -> list[OpResult]:
    """Each result with its command's stable id (one result per command, in order), its
    diff without the lines the command says are quiet."""
    for command, result in zip(sequence.commands, results, strict=True):
        result.id = command.key
        if command.quiet:
            result.diff = "\n".join(line for line in result.diff.splitlines()
                                    if not re.match(command.quiet, line))
    return results


def _op(planned: PlannedStep, data: dict[str, Any], check: bool, secrets: list[Secret]
        ) -> OpResult:
    def clean(text: str) -> str:
        return mask(text, secrets)

    status = Status(data["status"])
    shown = [data["note"]] if data["note"] else []
    if data["listing"]:  # what it did, also when it then failed (the error says why)
        shown.append((data["stdout"] if status is Status.FAILED
                      else data["stdout"] + data["stderr"]).strip())
    return OpResult(
        policy=planned.policy.name, kind=planned.policy.kind, name=data["name"],
        operation="command", status=status, planned=check,
        stdout=clean(data["stdout"]), stderr=clean(data["stderr"]),
        error=clean(data.get("error", "")), warning=clean(data["warning"]),
        diff=clean("\n".join(shown)), duration=float(data["duration"]),
    )


def _unfinished(planned: PlannedStep, check: bool, error: str, done: list[OpResult]
                ) -> list[OpResult]:
    """The results so far, the next command failed with `error`, the rest skipped."""
    sequence = planned.step
    assert isinstance(sequence, Sequence)
    rest = [OpResult(planned.policy.name, planned.policy.kind, c.name, "command", Status.SKIPPED,
                     planned=check) for c in sequence.commands[len(done):]]
    if rest:
        rest[0].status, rest[0].error = Status.FAILED, error
    return done + rest
