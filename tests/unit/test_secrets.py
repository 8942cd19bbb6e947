"""Secret references resolved and masked; text from policies and hosts made safe to print."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.shown import shown
from agent.core.results import OpResult, Status
from agent.core.secrets import MASK, Secret, SecretError, resolve_all, scrub
from agent.engine.redact import redact
from agent.errors import Problems
from agent.inventory import load_inventory


def test_references_at_any_depth_are_resolved_and_then_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIT_PASS", "pw-unit-4411")
    key = tmp_path / "key"
    key.write_text("-----BEGIN KEY-----\nAAAAsecretline1\nBBBBsecretline2\n-----END KEY-----\n")
    value, used = resolve_all({"a": [1, {"env": "UNIT_PASS"}], "b": {"file": str(key)},
                               "c": {"file": "x", "other": 1}})
    assert used and value["a"] == [1, "pw-unit-4411"] and value["c"] == {"file": "x", "other": 1}
    assert value["b"].startswith("-----BEGIN KEY-----\nAAAA")
    assert scrub("got pw-unit-4411.") == f"got {MASK}."
    # a diff shows a multi-line secret a line at a time: each line is masked on its own
    assert scrub("+ AAAAsecretline1\n+ BBBBsecretline2") == f"+ {MASK}\n+ {MASK}"
    assert resolve_all({"plain": "text"}) == ({"plain": "text"}, False)
    with pytest.raises(SecretError) as e:
        resolve_all({"x": [{"env": "UNIT_NEVER_SET"}]}, ("spec",))
    assert e.value.args == ("environment variable UNIT_NEVER_SET is not set", ("spec", "x", 0))


def test_a_sensitive_result_keeps_a_note_and_a_hash_only() -> None:
    Secret("pw-redact-99")
    op = OpResult("p", "tasks", "set pw-redact-99", "files.put", Status.CHANGED,
                  stdout="out", stderr="err", diff="- old\n+ new", error="failed pw-redact-99")
    redact(op, sensitive=True)
    assert op.diff.startswith("(sensitive: diff hidden; sha256 ") and len(op.diff) == 49
    assert (op.stdout, op.stderr, op.name, op.error) == ("", "", f"set {MASK}", f"failed {MASK}")


def test_inventory_variables_may_be_references(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIT_TOKEN", "tok-unit-1")
    path = tmp_path / "inv.yml"
    path.write_text("vars: {token: {env: UNIT_TOKEN}}\nhosts:\n  a: {vars: {x: {env: UNIT_NOPE}}}"
                    "\n  b: {}\n")
    with pytest.raises(Problems) as e:
        load_inventory(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:3:17: inventory > hosts.a.vars.x: environment variable UNIT_NOPE is not set"]
    path.write_text("vars: {token: {env: UNIT_TOKEN}}\nhosts: {a: {}}\n")
    assert dict(load_inventory(path).hosts[0].info.vars) == {"token": "tok-unit-1"}


def test_control_characters_are_shown_escaped() -> None:
    assert shown("name\x1b[2J\x1b]0;owned\x07") == "name\\x1b[2J\\x1b]0;owned\\x07"
    assert shown("abc\u202edcba\u2066x") == "abc\\u202edcba\\u2066x"
    assert shown("line 1\n\tline 2 é ✓") == "line 1\n\tline 2 é ✓"
