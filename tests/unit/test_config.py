"""agent.yml: defaults, paths relative to the file, errors with file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import Problems


def test_an_empty_config_gets_defaults_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text("concurrency: 2\n")
    config = load_config(path)
    assert config.policies == [tmp_path / "policies"]
    assert config.inventory == "@local"
    assert config.address() == ("127.0.0.1", 9469)
    assert (config.concurrency, config.lock_wait, config.retention.results) == (2, 300, 30 * 86400)
    path.write_text("policies: [/etc/opsagent/policies]\ninventory: inv.yml\nlisten: ''\n"
                    "retention: {results: 7d}\n")
    config = load_config(path)
    assert config.policies == [Path("/etc/opsagent/policies")]
    assert config.inventory == str(tmp_path / "inv.yml")
    assert config.address() is None and config.retention.results == 7 * 86400


def test_every_error_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text("concurency: 2\nlisten: localhost\nretention: {results: soon}\n"
                    "log_format: xml\n")
    with pytest.raises(Problems) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: agent config > concurency: unknown field 'concurency'; did you mean "
        "'concurrency'?",
        f"{path}:2:9: agent config > listen: expected HOST:PORT such as 127.0.0.1:9469, "
        "got 'localhost'",
        f"{path}:3:22: agent config > retention.results: expected a duration like 90s, 5m, 1h or "
        "1d, got 'soon'",
        f"{path}:4:13: agent config > log_format: expected 'auto', 'json' or 'text', got 'xml'",
    ]


def test_pull_credentials_and_trusted_keys_are_checked(tmp_path: Path) -> None:
    from agent.daemon.pull import split_credentials

    assert split_credentials("https://bot:t%40ken@git.example/p.git") == (
        "https://git.example/p.git", "bot", "t@ken")
    assert split_credentials("ssh://git@git.example/p.git") == (
        "ssh://git@git.example/p.git", None, None)
    path = tmp_path / "agent.yml"
    path.write_text("pull:\n  url: https://git.example/p.git\n"
                    "  verify: {signed_by: ['not a key']}\n  password: hunter2\n")
    with pytest.raises(Problems) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:3:23: agent config > pull.verify.signed_by: expected an SSH public key or a "
        "40-hex-digit OpenPGP fingerprint, got 'not a key'",
        f"{path}:4:13: agent config > pull.password: a password is never written inline; use "
        "{env: NAME} or {file: PATH}"]
