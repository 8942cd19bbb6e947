"""The deploy kind's host program on a real folder: an artifact whose sha256 differs is
refused and removed, a tarball reaching outside its release is refused, the current
symlink is switched by rename, a failed release is never rolled back to, and pruning
keeps the current and the verified release and removes failed ones first."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from agent.kinds.deploy import host_release as h
from agent.kinds.deploy.conditions import holds, parse_condition


def _artifact(path: Path, version: str, members: dict[str, str] | None = None) -> str:
    incoming = path / ".opsagent" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text in (members or {"VERSION": version}).items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    sha = hashlib.sha256(data.getvalue()).hexdigest()
    (incoming / f"{sha}.tar.gz").write_bytes(data.getvalue())
    return sha


def _release(path: Path, version: str) -> None:
    assert h.main({"do": "prepare", "path": str(path), "version": version,
                   "sha256": _artifact(path, version)}) == 0
    assert h.main({"do": "switch", "path": str(path), "version": version}) == 0


def test_a_wrong_sha256_is_refused_and_the_artifact_removed(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    sha = _artifact(tmp_path, "1.0")
    wrong = "0" * 64
    os.rename(tmp_path / f".opsagent/incoming/{sha}.tar.gz", tmp_path / f".opsagent/incoming/{wrong}.tar.gz")
    assert h.main({"do": "prepare", "path": str(tmp_path), "version": "1.0", "sha256": wrong}) == 1
    assert f"sha256 is {sha}, expected {wrong}" in capsys.readouterr().err
    assert not (tmp_path / "releases" / "1.0").exists()
    assert not list((tmp_path / ".opsagent/incoming").iterdir())


def test_a_tarball_reaching_outside_its_release_is_refused(tmp_path: Path) -> None:
    sha = _artifact(tmp_path, "1.0", {"../../escaped": "x"})
    assert h.main({"do": "prepare", "path": str(tmp_path), "version": "1.0", "sha256": sha}) == 1
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "releases/1.0").exists()


def test_switch_rollback_and_prune_keep_what_a_rollback_needs(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    for version in ("1.0", "1.1"):
        _release(tmp_path, version)
        h.main({"do": "verify", "path": str(tmp_path), "version": version})
    assert os.readlink(tmp_path / "current") == "releases/1.1"
    _release(tmp_path, "2.0")
    h.main({"do": "fail", "path": str(tmp_path), "version": "2.0"})
    h.main({"do": "rollback", "path": str(tmp_path), "to": None})
    assert h.current(tmp_path) == "1.1"
    capsys.readouterr()
    assert h.main({"do": "rollback", "path": str(tmp_path), "to": "2.0"}) == 1
    assert "not a release to roll back to" in capsys.readouterr().err
    _release(tmp_path, "1.2")  # current 1.2, verified 1.1; 1.0 and the failed 2.0 may go
    h.main({"do": "prune", "path": str(tmp_path), "keep": 3})
    assert h.releases(tmp_path) == ["1.0", "1.1", "1.2"]  # the failed one went first
    h.main({"do": "prune", "path": str(tmp_path), "keep": 1})
    assert h.releases(tmp_path) == ["1.1", "1.2"]  # never the current nor the verified one
    state = capsys.readouterr().out.splitlines()[-1]
    assert json.loads(state.removeprefix("STATE "))["verified"] == "1.1"
    assert h.main({"do": "switch", "path": str(tmp_path), "version": "9.9"}) == 1


def test_a_second_prepare_and_switch_change_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _release(tmp_path, "1.0")
    capsys.readouterr()
    _release(tmp_path, "1.0")
    out = capsys.readouterr().out
    assert "release 1.0 is there" in out and "current is 1.0" in out  # no change


@pytest.mark.parametrize(("text", "canary", "stable", "expected"), [
    ("p99 <= 1.5 * baseline.p99 + 20ms", {"p99": 0.5}, {"p99": 0.4}, True),  # all slow: not it
    ("p99 <= 1.5 * baseline.p99 + 20ms", {"p99": 0.5}, {"p99": 0.01}, False),  # the canary alone
    ("success_rate >= baseline.success_rate - 1%", {"success_rate": 0.995},
     {"success_rate": 1.0}, True),
    ("success_rate >= baseline.success_rate - 1%", {"success_rate": 0.95},
     {"success_rate": 1.0}, False),
    ("p99 <= baseline.p99", {"p99": 0.1}, {}, None),  # no baseline data: inconclusive
])
def test_conditions_against_a_baseline(text: str, canary: dict[str, float],
                                       stable: dict[str, float], expected: bool | None) -> None:
    assert holds(parse_condition(text, probe=True, baseline=True), canary, stable) is expected


def test_a_baseline_condition_needs_a_baseline_probe() -> None:
    with pytest.raises(ValueError, match="set http_probe.baseline: true"):
        parse_condition("p99 <= baseline.p99", probe=True)


@pytest.mark.parametrize(("text", "values", "expected"), [
    (">= 0.99", {"result": 0.995}, True),
    (">= 0.99", {"result": 0.9}, False),
    (">= 0.99", {}, None),  # no data is never success
    ("success_rate >= 99% and p99 <= 300ms", {"success_rate": 1.0, "p99": 0.2}, True),
    ("success_rate >= 99% and p99 <= 300ms", {"success_rate": 1.0, "p99": 0.4}, False),
])
def test_conditions(text: str, values: dict[str, float], expected: bool | None) -> None:
    assert holds(parse_condition(text, probe="p99" in text), values) is expected


def test_a_git_artifact_is_the_tree_of_its_tag_without_git(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    source = tmp_path / "src"
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@a", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@a", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True, env=env)
    (source / "app.py").write_text("print('v1')\n")
    for args in (["add", "-A"], ["commit", "-qm", "one"], ["tag", "v1"]):
        subprocess.run(["git", "-C", str(source), *args], check=True, env=env)
    host = tmp_path / "host"
    job = {"do": "prepare", "path": str(host), "version": "1.0", "sha256": "", "git": str(source),
           "ref": "v1"}
    assert h.main(job) == 0
    assert (host / "releases/1.0/app.py").read_text() == "print('v1')\n"
    assert not (host / "releases/1.0/.git").exists()
    assert "unpacked release 1.0 (v1 at " in capsys.readouterr().out
    assert h.main(job) == 0 and "release 1.0 is there" in capsys.readouterr().out
    assert h.main({**job, "version": "2.0", "ref": "v2"}) == 1
    assert "git clone" in capsys.readouterr().err and not (host / "releases/2.0").exists()
