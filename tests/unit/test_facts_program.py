"""The host-side program that reads a round of facts (prefetch.FACTS) answers each command
as `sh -c` run on its own would: exit status, stdout and stderr apart, one command's
syntax error or exit its own, the caller's folder, no stdin, output that is not UTF-8.

(Running all of a round's commands in one shell, each in a subshell writing to files,
looked 10 % faster alone and was 20 % slower in bench/compare.py at 50 hosts: not done.)"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.engine.prefetch import FACTS

COMMANDS = [
    "sh -c 'echo out; echo err >&2; exit 3'",
    "sh -c 'if then fi'",  # a syntax error: this command fails, the next ones run
    "sh -c 'pwd'",
    "sh -c 'exit 0; echo never'",
    "sh -c 'cat; echo \"[${1-unset}]\"'",  # nothing on stdin, no arguments
    "sh -c " + shlex.quote("printf '\\377'"),  # not UTF-8
    "echo plain; false",  # not pyinfra's sh -c form
    "sh -c 'head -c 300000 /dev/zero | tr \"\\0\" x'",
    "sh -c " + shlex.quote("test -e /nonexistent || echo '\"quoted\" $HOME'"),
]


def answers(tmp_path: Path) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", FACTS], cwd=tmp_path, text=True,
                          input=json.dumps(COMMANDS) + "\n", capture_output=True, check=True,
                          timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines()]


def alone(tmp_path: Path) -> list[dict[str, Any]]:
    out = []
    for command in COMMANDS:
        done = subprocess.run(command, shell=True, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
        try:
            out.append({"rc": done.returncode, "stdout": done.stdout.decode(),
                        "stderr": done.stderr.decode()})
        except UnicodeDecodeError:
            out.append({"rc": done.returncode, "undecodable": True})
    return out


def test_each_command_is_answered_as_sh_c_alone_would_answer_it(tmp_path: Path) -> None:
    got, want = answers(tmp_path), alone(tmp_path)
    assert [a["rc"] for a in got] == [3, 2, 0, 0, 0, 0, 1, 0, 0]
    assert got[0] == {"rc": 3, "stdout": "out\n", "stderr": "err\n"}
    assert got[2]["stdout"] == f"{tmp_path}\n" and got[4]["stdout"] == "[unset]\n"
    assert got[5] == {"rc": 0, "undecodable": True} and len(got[7]["stdout"]) == 300000
    assert "Syntax error" in got[1]["stderr"] or "syntax error" in got[1]["stderr"]
    got[1]["stderr"] = want[1]["stderr"] = ""  # the shell names the script in its message
    assert got == want

