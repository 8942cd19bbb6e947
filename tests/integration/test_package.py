"""Installed from its wheel, outside the checkout, opsagent has everything it reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import COMMANDS
from agent.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The opsagent command of a fresh venv that has the wheel installed, and nothing else."""
    top = tmp_path_factory.mktemp("package")
    source = top / "source"  # a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", ".mypy_cache", ".ruff_cache",
        ".pytest_cache"))
    wheels = top / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(source)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    assert "deprecated" not in built.stderr.lower(), built.stderr
    (wheel,) = wheels.glob("opsagent-*.whl")
    env = top / "venv"
    venv.create(env, with_pip=True)
    done = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    yield env / "bin" / "opsagent"


def run(command: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(command), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(installed: Path, tmp_path: Path, name: str) -> None:
    done = run(installed, name, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: opsagent")


@pytest.mark.parametrize("mode", ["daemon", "timer"])
def test_install_service_renders_its_units(installed: Path, tmp_path: Path, mode: str) -> None:
    done = run(installed, "install-service", "--mode", mode, "--print", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[Service]" in done.stdout and f"ExecStart={installed.resolve()}" in done.stdout


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_explain_each_kind(installed: Path, tmp_path: Path, kind: str) -> None:
    done = run(installed, "explain", kind, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert kind in done.stdout


def test_the_example_policies_validate_and_plan(installed: Path, tmp_path: Path) -> None:
    for folder in ("policies", "templates", "inventories", "playbooks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    sandbox = tmp_path / "sandbox"
    inventory = tmp_path / "inventories" / "local.yml"
    inventory.write_text(inventory.read_text().replace("/tmp/opsagent-sandbox", str(sandbox)))
    done = run(installed, "validate", "policies", "-i", "inventories/local.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run(installed, "plan", "policies", "-i", "inventories/local.yml", "--state-dir",
               str(tmp_path / "state"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would change" in done.stdout or "would" in done.stdout
    assert not sandbox.exists()  # plan touches nothing
