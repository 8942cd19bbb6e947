"""A fleet: N hosts on one bridge, their keys, an opsagent inventory, and a state file.

The state file (`/run/opsagent-fleet/<slot>/state.json`) lets `python -m tests.fleet`
work on a fleet that another process started. Teardown (`sweep`) does not trust it: it
finds the slot's namespaces, processes and mounts by name and removes them all, so it
also cleans up after a run that was killed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.fleet import host as hosts
from tests.fleet import image, slowlink
from tests.fleet.host import Host
from tests.fleet.net import FleetError, Net, netns_pids, sh

RUN_ROOT = Path(os.environ.get("OPSAGENT_FLEET_RUN", "/run/opsagent-fleet"))
NSPAWN_RUN = Path("/run/systemd/nspawn")
SANDBOX = "/srv/sandbox"


class Fleet:
    def __init__(self, slot: int = 1) -> None:
        if not 1 <= slot <= 250:
            raise FleetError(f"slot {slot} is out of range 1-250")
        self.slot = slot
        self.net = Net(slot)
        self.dir = RUN_ROOT / str(slot)
        self.hosts: dict[str, Host] = {}
        self.image: Path | None = None
        if self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.hosts = {h["name"]: Host(**h) for h in data["hosts"]}
            self.image = Path(data["image"])

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def client_key(self) -> Path:
        return self.dir / "keys" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "keys" / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    # lifecycle

    def up(self, count: int, systemd: int = 0) -> list[Host]:
        """Start `count` plain hosts and `systemd` booted ones, next to any already running."""
        self.image = image.ensure()
        for sub in ("keys", "logs", "hostkeys", "hosts"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if not self.client_key.exists():
            keygen(self.client_key)
        self.net.up()
        if systemd:
            _nspawn_run_dir(self.dir)
        added = [self._add(systemd=False) for _ in range(count)]
        added += [self._add(systemd=True) for _ in range(systemd)]
        for h in added:
            hosts.wait_ssh(h, timeout=120 if h.systemd else 60)
        return added

    def _add(self, systemd: bool) -> Host:
        index = max((h.index for h in self.hosts.values()), default=0) + 1
        name = f"h{index}"
        h = Host(name, index, self.net.address(index), str(self.dir / "hosts" / name), systemd)
        self.hosts[name] = h
        self.net.add_host(index)
        keygen(self.dir / "hostkeys" / name / "ssh_host_ed25519_key")
        self._boot(h)
        return h

    def _boot(self, h: Host) -> None:
        assert self.image is not None
        hosts.mount(h, self.image)
        self._identity(h)
        hosts.start(h, self.net, self.log(h.name))
        self.save()

    def reset(self, name: str) -> Host:
        """Back to the pristine image: processes, disk and link faults all gone (about a second)."""
        h = self.host(name)
        hosts.stop(h, self.net)
        hosts.umount(h)
        self.net.restore(h.index)
        self.net.undelay(h.index)
        slowlink.uninstall(self.net.netns(h.index))
        self._boot(h)
        hosts.wait_ssh(h, timeout=120 if h.systemd else 60)
        return h

    def remove(self, name: str) -> None:
        """Stop a host and take it out of the fleet (and its inventory) for good."""
        h = self.host(name)
        hosts.stop(h, self.net)
        hosts.umount(h)
        self.net.remove_host(h.index)
        del self.hosts[name]
        self.save()

    def down(self) -> None:
        sweep(self.slot)
        self.hosts = {}

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            have = ", ".join(self.hosts) or "none"
            raise FleetError(f"no host {name!r} in fleet {self.slot} (have: {have})")
        return self.hosts[name]

    # what tests use

    def run(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return hosts.run_inside(self.host(name), self.net, command, check)

    def ssh(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        """Run a command on the host over SSH, as opsagent would reach it."""
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.client_key), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "ConnectTimeout=10", f"root@{self.host(name).address}", command],
            capture_output=True, text=True, check=False, timeout=120,
        )

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for h in self.hosts.values():
            pids = self.net.pids(h.index)
            rows.append({"name": h.name, "address": h.address, "systemd": h.systemd,
                         "running": bool(pids), "processes": len(pids),
                         "disk_used": _used(h) if pids else "-"})
        return rows

    def save(self) -> None:
        data = {"slot": self.slot, "image": str(self.image),
                "hosts": [h.data() for h in self.hosts.values()]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)
        self._write_inventory()
        self._write_known_hosts()

    def _identity(self, h: Host) -> None:
        root = h.merged
        (root / "etc/hostname").write_text(h.name + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{h.address} {h.name}\n")
        for suffix in ("", ".pub"):
            src = self.dir / "hostkeys" / h.name / f"ssh_host_ed25519_key{suffix}"
            dest = root / f"etc/ssh/ssh_host_ed25519_key{suffix}"
            shutil.copy(src, dest)
            dest.chmod(0o600 if not suffix else 0o644)
        auth = root / "root/.ssh/authorized_keys"
        auth.parent.mkdir(mode=0o700, exist_ok=True)
        auth.write_text(self.client_key.with_suffix(".pub").read_text())
        auth.chmod(0o600)

    def _write_known_hosts(self) -> None:
        lines = []
        for h in self.hosts.values():
            key = (self.dir / "hostkeys" / h.name / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{h.address} {key[0]} {key[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _write_inventory(self) -> None:
        lines = [
            "# written by the opsagent test fleet (python -m tests.fleet)",
            "vars:",
            f"  sandbox: {SANDBOX}",
            "ssh:",
            "  user: root",
            f"  key: {self.client_key}",
            f"  known_hosts_file: {self.known_hosts}",
            "  config_file: /dev/null",
            "  strict_host_key_checking: 'yes'",
            "hosts:",
        ]
        lines += [f"  {h.name}: {{ssh: {{hostname: {h.address}}}}}" for h in self.hosts.values()]
        groups = {"plain": [h.name for h in self.hosts.values() if not h.systemd],
                  "systemd": [h.name for h in self.hosts.values() if h.systemd]}
        lines.append("groups:")
        lines += [f"  {g}: {{hosts: [{', '.join(names)}]}}" for g, names in groups.items()]
        self.inventory.write_text("\n".join(lines) + "\n")


def sweep(slot: int) -> None:
    """Remove everything fleet `slot` made, whether or not its state file is intact."""
    net = Net(slot)
    top = RUN_ROOT / str(slot)
    marker = str(top).encode()
    hosts.kill_until_gone(
        lambda: [p for ns in net.namespaces() for p in netns_pids(ns)] + _pids_naming(marker),
        f"fleet {slot}", timeout=2.5)
    for target in sorted(_mounts_under(top), key=len, reverse=True):
        umounted = subprocess.run(["umount", target], capture_output=True, check=False)
        if umounted.returncode and target in _mounts_under(top):  # gone with another: done
            sh("umount", "-l", target)
    net.down()
    if (top / "nspawn-run").exists():  # we mounted /run/systemd/nspawn for our systemd hosts
        subprocess.run(["umount", str(NSPAWN_RUN)], capture_output=True, check=False)
    shutil.rmtree(top, ignore_errors=True)


def leftovers(slot: int) -> list[str]:
    """What of fleet `slot` is still on this machine: namespaces, links, mounts, processes."""
    net = Net(slot)
    top = RUN_ROOT / str(slot)
    found = [f"netns {n}" for n in net.namespaces()] + [f"link {n}" for n in net.links()]
    found += [f"mount {m}" for m in _mounts_under(top)]
    found += [f"process {p}" for p in _pids_naming(str(top).encode())]
    return found


def _pids_naming(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes() and hosts.alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _mounts_under(top: Path) -> list[str]:
    return [p for p in hosts.mount_points() if p == str(top) or p.startswith(f"{top}/")]


def _nspawn_run_dir(top: Path) -> None:
    """systemd-nspawn keeps state in /run/systemd/nspawn; give it a tmpfs of its own."""
    if str(NSPAWN_RUN) in hosts.mount_points():
        return
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(NSPAWN_RUN))
    (top / "nspawn-run").write_text("")


def keygen(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsagent-fleet", "-f", str(path))


def _used(h: Host) -> str:
    st = os.statvfs(h.merged)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return f"{used / 2**20:.1f} MiB"
