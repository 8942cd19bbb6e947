"""The host-side sequence runner (engine/on_host.py), run as hosts run it: `python3 -c`
with this file's source and then the job on stdin, JSON lines out.

Each case is a job (commands, check mode) and the lines it must print, as pyinfra's
operation tests pair arguments with the commands they yield.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.core.secrets import SecretRef
from agent.core.steps import Command, Sequence
from agent.engine.sequence import LAUNCH, job

FAIL = ("sh", "-c", "echo broken >&2; exit 3")
OK = ("true",)


def run(commands: list[Command], check: bool = False, env: dict[str, str] | None = None,
        secret_env: dict[str, SecretRef] | None = None) -> list[dict[str, Any]]:
    stdin, _ = job(Sequence("case", tuple(commands), env or {}, secret_env or {}), check)
    done = subprocess.run(["sh", "-c", LAUNCH], input=stdin, capture_output=True, text=True,
                          check=True, timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines()]


def brief(lines: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [(line["name"], line["status"], *(line[k] for k in keys)) for line in lines]


CASES: list[tuple[str, list[Command], bool, list[tuple[Any, ...]]]] = [
    ("a guard that passes: ok, not run",
     [Command("make", ("false",), unless=OK, effect="changed")], False,
     [("make", "ok", "already done")]),
    ("a failure skips what follows; always and failed still run",
     [Command("a", FAIL), Command("b", OK), Command("c", OK, when="always"),
      Command("d", OK, when="failed")], False,
     [("a", "failed", ""), ("b", "skipped", "an earlier step failed"), ("c", "ran", ""),
      ("d", "ran", "")]),
    ("on_error hooks do not run when nothing failed",
     [Command("a", OK), Command("hook", OK, when="failed")], False,
     [("a", "ran", ""), ("hook", "skipped", "nothing failed")]),
    ("after_change after an ok step does nothing",
     [Command("prune", ("echo", "kept"), effect="changed", changed_if="^Pruning"),
      Command("compact", FAIL, when="after_change")], False,
     [("prune", "ok", ""), ("compact", "ok", "nothing to do: the step before changed nothing")]),
    ("after_change runs after a change",
     [Command("prune", ("echo", "Pruning x"), effect="changed", changed_if="^Pruning"),
      Command("compact", OK, when="after_change", effect="changed")], False,
     [("prune", "changed", ""), ("compact", "changed", "")]),
    ("needs: a step whose prerequisite failed is skipped",
     [Command("init", FAIL), Command("check", OK, when="always", needs=("init",))], False,
     [("init", "failed", ""), ("check", "skipped", "needs 'init', which did not succeed")]),
    ("a warning exit code is success with a warning",
     [Command("create", ("sh", "-c", "echo w >&2; exit 1"), warning=(1,), effect="changed")],
     False, [("create", "changed", "")]),
    ("check mode: no check variant says it would, with the preview",
     [Command("create", FAIL, effect="changed", preview="would create x")], True,
     [("create", "changed", "would create x")]),
    ("check mode runs the read-only variant instead",
     [Command("prune", FAIL, check=("echo", "Would prune a"), effect="changed",
              changed_if="^(Pruning|Would prune)")], True,
     [("prune", "changed", "")]),
    ("check mode: a variant that fails after a change cannot be judged yet",
     [Command("init", FAIL, effect="changed"), Command("prune", FAIL, check=FAIL,
                                                       effect="changed", when="always")], True,
     [("init", "changed", ""), ("prune", "changed", "cannot be judged before the steps above")]),
]


@pytest.mark.parametrize("commands, check, want", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_sequence(commands: list[Command], check: bool, want: list[tuple[Any, ...]]) -> None:
    assert brief(run(commands, check), "note") == want


def test_a_failure_says_its_exit_code_and_last_lines() -> None:
    [line] = run([Command("a", FAIL)])
    assert (line["rc"], line["error"]) == (3, "exit code 3: broken")


def test_retries_until_success(tmp_path: Path) -> None:
    count = tmp_path / "n"
    flaky = ("sh", "-c", f'echo x >> {count}; [ "$(wc -l < {count})" -ge 3 ]')
    [line] = run([Command("flaky", flaky, retries=3, retry_wait=0.01)])
    assert (line["status"], line["attempts"]) == ("ran", 3)


def test_a_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    [line] = run([Command("a", ("sh", "-c", "echo 'no such repo' >&2; exit 2"), retries=3,
                          retry_wait=0.01, permanent="no such repo")])
    assert (line["status"], line["attempts"]) == ("failed", 1)


def test_a_stamped_command_is_not_due_again(tmp_path: Path) -> None:
    command = Command("check", OK, every=3600, stamp=str(tmp_path / "s" / "check"), effect="ok")
    assert brief(run([command]), "note") == [("check", "ok", "")]
    [again] = run([command])
    assert again["note"].startswith("not due: last ran 0s ago, runs every 1h")


def test_secrets_reach_only_commands_marked_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_SECRET", "s3cret")
    show = ("sh", "-c", 'echo "[$PASS][$PLAIN][${CASE_SECRET:-}]"')
    lines = run([Command("with", show, secrets=True), Command("without", show)],
                env={"PLAIN": "p"}, secret_env={"PASS": SecretRef(env="CASE_SECRET")})
    # the controller's own variable never reaches a command: only the job's environment
    assert [line["stdout"].strip() for line in lines] == ["[s3cret][p][]", "[][p][]"]


def test_output_beyond_the_default_is_kept_only_when_the_command_asks() -> None:
    big = ("python3", "-c", "print('x' * 30000 + 'end')")
    default, asked = run([Command("default", big), Command("asked", big, keep=100_000)])
    assert len(default["stdout"]) == 20000 and default["stdout"].endswith("end\n")
    assert len(asked["stdout"]) == 30004  # all of it
