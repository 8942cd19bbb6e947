from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sshd

requires_sshd = pytest.mark.skipif(not sshd.available(), reason="sshd (openssh-server) not installed")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> sshd.Keys:
    return sshd.Keys.make(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def servers(keys: sshd.Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[sshd.Sshd]]:
    """Three sshd processes on loopback, for the whole session."""
    if not sshd.available():
        pytest.skip("sshd (openssh-server) not installed")
    base = tmp_path_factory.mktemp("sshd")
    started = [sshd.Sshd(keys, base / f"h{i}").start() for i in range(1, 4)]
    try:
        for server in started:
            server.wait()
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def loopback(keys: sshd.Keys, servers: list[sshd.Sshd], tmp_path: Path) -> Path:
    """An inventory of h1..h3 (one sshd each), each host with its own sandbox folder."""
    hosts = {f"h{i}": s.port for i, s in enumerate(servers, 1)}
    host_vars = {name: {"sandbox": str(tmp_path / "hosts" / name)} for name in hosts}
    path = tmp_path / "inventory.yml"
    path.write_text(sshd.inventory_yaml(keys, hosts, host_vars))
    return path
