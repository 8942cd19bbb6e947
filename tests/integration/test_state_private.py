"""The state dir is its owner's alone: 0700 and 0600 however made; planted links refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.state.store import StateError, Store
from tests.support.project import local_project, opsagent


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_apply_makes_a_private_state_dir_and_tightens_a_loose_one(tmp_path: Path) -> None:
    root, state = local_project(tmp_path), tmp_path / "state"
    args = ("apply", "policies", "-i", "inventory.yml", "--state-dir", str(state))
    assert opsagent(root, *args).returncode == 0
    assert mode(state) == 0o700 and mode(state / "locks") == 0o700
    assert {p.name: mode(p) for p in state.rglob("*") if p.is_file()} == {
        name: 0o600 for name in ("state.db", "state.db-checked", "host-_local.lock")}
    os.chmod(state, 0o755)  # as an older opsagent left it
    os.chmod(state / "state.db", 0o644)
    assert opsagent(root, *args).returncode == 0
    assert mode(state) == 0o700 and mode(state / "state.db") == 0o600


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    root, state = local_project(tmp_path), tmp_path / "state"
    (state / "locks").mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (state / "locks" / "host-_local.lock").symlink_to(victim)
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", str(state))
    assert done.returncode == 1
    assert done.stderr.endswith(f"{state / 'locks' / 'host-_local.lock'} is a symbolic link: "
                                "refused (someone planted it?)\n")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "sandbox").exists()  # nothing ran


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_a_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "theirs"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)  # nobody
    with pytest.raises(StateError, match=r"belongs to uid 65534, not to this user"):
        Store(state)
    assert list(state.iterdir()) == []
