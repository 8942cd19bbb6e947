"""The corpus of bad policies: each gets exactly the errors in its .expected file, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main

CASES = Path(__file__).parent.parent / "cases"
INVALID = sorted((CASES / "invalid").rglob("*.yml"))


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str]]:
    argv = ["validate", *map(str, paths), "-i", str(CASES / "inventory.yml"),
            "--templates", str(CASES / "templates")]
    code = main(argv)
    err = capsys.readouterr().err
    return code, err.splitlines()


def expected_lines(case: Path) -> list[str]:
    text = case.with_suffix(".expected").read_text()
    text = text.replace("{dir}", str(case.parent))
    text = text.replace("{inventory}", str(CASES / "inventory.yml"))
    text = text.replace("{templates}", str(CASES / "templates"))
    return text.splitlines()


@pytest.mark.parametrize("case", INVALID, ids=[c.stem for c in INVALID])
def test_invalid_case_reports_exact_errors(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, case)
    want = expected_lines(case)
    assert code == 1
    assert lines[:-1] == want
    n = len(want)
    assert lines[-1] == f"{n} problem{'s' if n != 1 else ''} found; nothing was changed on any host."


def test_every_error_of_every_file_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, CASES / "invalid")
    want = sorted(line for case in INVALID for line in expected_lines(case))
    assert code == 1
    assert sorted(lines[:-1]) == want


def test_non_utf8_bytes_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.yml"
    bad.write_bytes(b"apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: caf\xe9}\n")
    code, lines = validate(capsys, bad)
    assert code == 1
    assert lines[0] == f"{bad}:3:21: not valid UTF-8: byte 0xe9 cannot be decoded"


def test_oversized_file_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n")
    code, lines = validate(capsys, big)
    assert code == 1
    assert lines[0] == f"{big}:1:1: file is {big.stat().st_size} bytes; the limit is 1048576"


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, tmp_path / "nope.yml")
    assert code == 1
    assert lines[0] == f"{tmp_path / 'nope.yml'}: no such file or directory"


def test_directory_without_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, tmp_path)
    assert code == 1
    assert lines[0] == f"{tmp_path}: no policy files (*.yml, *.yaml) found"


def test_valid_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(CASES / "valid"), "-i", str(CASES / "inventory.yml"),
                 "--templates", str(CASES / "templates")])
    out = capsys.readouterr()
    assert out.err == ""
    assert code == 0
    assert out.out.strip() == "ok: 3 policies, 3 hosts, 8 steps"


def test_merge_keys_reuse_a_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "merged.yml"
    good.write_text("apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: m}\ntargets: [all]\n"
                    "spec:\n  tasks:\n    - &dir\n      name: one\n"
                    "      files.directory: {path: '{{ root }}/one', mode: '755'}\n"
                    "    - <<: *dir\n      name: two\n")
    code = main(["validate", str(good), "-i", str(CASES / "inventory.yml")])
    assert (code, capsys.readouterr().out.strip()) == (0, "ok: 1 policies, 3 hosts, 6 steps")


def test_a_merged_key_is_located_where_the_anchor_wrote_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "merged.yml"
    bad.write_text("apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: m}\ntargets: [all]\n"
                   "spec:\n  tasks:\n    - &dir\n      files.directory: {path: /tmp/x, mod: '755'}\n"
                   "    - <<: *dir\n      name: again\n")
    code, lines = validate(capsys, bad)
    assert code == 1
    assert lines[:2] == [
        f"{bad}:8:39: tasks 'm' > spec.tasks[{i}].files.directory.mod: unknown argument for "
        "files.directory; did you mean 'mode'?" for i in (0, 1)]


def test_a_template_that_loops_too_long_is_stopped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.policy import sandbox

    monkeypatch.setattr(sandbox, "SECONDS", 0.5)
    bad = tmp_path / "loop.yml"
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    bad.write_text("apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: loop}\ntargets: [all]\n"
                   f"spec:\n  tasks:\n    - files.directory: {{path: '{loops}'}}\n")
    code, lines = validate(capsys, bad)
    assert code == 1
    assert lines[0] == (f"{bad}:7:31: tasks 'loop' > spec.tasks[0].files.directory.path: "
                        "template refused: rendering took longer than 0.5 s")
