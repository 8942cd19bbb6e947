"""invoke, which paramiko imports for `Match exec` lines (and pyinfra replaces with its
own runner), is not loaded with the engine, and still loads when paramiko needs it."""

from __future__ import annotations

import subprocess
import sys

ENGINE = """
import sys
import agent.engine.run
print(type(sys.modules["invoke"]).__name__)
"""
MATCH_EXEC = r"""
import sys
import agent
import paramiko
print(type(sys.modules["invoke"]).__name__)
config = paramiko.SSHConfig.from_text('Match exec "test 1 = 1"\n  Port 2222\nHost *\n  User x\n')
print(config.lookup("somewhere")["port"])
print(type(sys.modules["invoke"]).__name__)
"""


def run(program: str) -> list[str]:
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, timeout=60).stdout.split()


def test_the_engine_leaves_invoke_unloaded() -> None:
    assert run(ENGINE) == ["Deferred"]


def test_invoke_loads_for_a_match_exec_line() -> None:
    assert run(MATCH_EXEC) == ["Deferred", "2222", "module"]
