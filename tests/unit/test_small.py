"""Small pure pieces: durations, secrets, guard scripts, the command line's edges."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.core.durations import parse_duration
from agent.core.secrets import MASK, SecretError, SecretRef, mask
from agent.core.steps import Guard
from agent.engine.guards import guard_script


@pytest.mark.parametrize("text,seconds", [
    ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), (45, 45),
])
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5x", "", "1h 2", True, -3])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "borg.pass"
    key.write_text("s3cret-value\n")
    secret = SecretRef(file=str(key)).resolve()
    assert secret.reveal() == "s3cret-value"
    assert repr(secret) == str(secret) == f"{secret}" == MASK
    assert mask("borg said s3cret-value twice: s3cret-value", [secret]) == (
        f"borg said {MASK} twice: {MASK}")
    monkeypatch.setenv("TOKEN", "tok")
    assert SecretRef(env="TOKEN").resolve().reveal() == "tok"
    monkeypatch.delenv("TOKEN")
    with pytest.raises(SecretError, match="environment variable TOKEN is not set"):
        SecretRef(env="TOKEN").resolve()
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(file="a", env="B")


def test_guard_script_runs_only_when_needed(tmp_path: Path) -> None:
    marker = tmp_path / "done"
    guard = Guard(creates=str(marker), only_if="true", unless="false")

    def allows() -> bool:
        return subprocess.run(["sh", "-c", guard_script(guard)]).returncode == 0

    assert allows()
    marker.touch()
    assert not allows()
    assert subprocess.run(["sh", "-c", guard_script(Guard(removes=str(marker)))]).returncode == 0
    assert subprocess.run(["sh", "-c", guard_script(Guard(only_if="exit 3"))]).returncode != 0


def test_cli_edges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("opsagent ")
    assert main(["nope"]) == 1
    assert "unknown command 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["validate", "--no-such-flag"])
    assert e.value.code == 1


def test_explain_lists_fields_and_operation_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "tasks: list[Task] (required)  The operations, in order." in out
    assert "creates: str | null (default None)  Skip when this path exists." in out
    assert main(["explain", "tasks", "files.line"]) == 0
    assert "  path: str (required)" in capsys.readouterr().out


def test_explain_lists_modules_and_their_operations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "\n  files: block, copy, directory, download, file, " in out
    assert "\n  server: " in out and " shell, " in out
    assert main(["explain", "tasks", "files"]) == 0  # was: unknown module 'files'; did you mean 'files'?
    out = capsys.readouterr().out
    assert "  files.line: Ensure lines in files using grep to locate and sed to replace." in out
    with pytest.raises(SystemExit) as e:
        main(["explain", "tasks", "filez"])
    assert e.value.code == 1
    assert "unknown operation module 'filez'; did you mean 'files'?" in capsys.readouterr().err


def test_a_module_named_without_its_operation_says_so() -> None:
    from agent.engine import catalog

    with pytest.raises(catalog.UnknownOperation) as e:
        catalog.operation("files")
    assert str(e.value) == ("'files' is an operation module: name one of its operations, e.g. "
                            "files.block (opsagent explain tasks files lists them)")


def test_help_does_not_import_pyinfra() -> None:
    code = ("import sys; from agent.cli import main; main(['--help']); "
            "print('pyinfra' in sys.modules, 'gevent' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.splitlines()[-1] == "False False"
