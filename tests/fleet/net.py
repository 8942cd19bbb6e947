"""The fleet's network: one bridge per fleet slot, one namespace and veth pair per host.

Every name carries the slot (`ofl2br`, `ofl2-h1`, `ofl2v1`) and every address sits in
10.213.<slot>.0/24, so two fleets (one by hand, one under pytest) never meet, and
teardown can find whatever a killed run left behind by name alone.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


class FleetError(RuntimeError):
    """A fleet command failed; the message carries the command and what it printed."""


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise FleetError(f"{' '.join(args)}: rc {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Net:
    slot: int

    @property
    def prefix(self) -> str:
        return f"ofl{self.slot}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.slot}.1"

    def netns(self, index: int) -> str:
        return f"{self.prefix}-h{index}"

    def veth(self, index: int) -> str:
        return f"{self.prefix}v{index}"

    def address(self, index: int) -> str:
        return f"10.213.{self.slot}.{index + 1}"

    def mac(self, index: int) -> str:
        # fixed per host, so a reset host answers at the same MAC (no stale ARP entries)
        return f"02:fa:00:{self.slot:02x}:{index >> 8:02x}:{index & 0xff:02x}"

    def up(self) -> None:
        if not _exists("link", self.bridge):
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def add_host(self, index: int) -> None:
        ns, veth = self.netns(index), self.veth(index)
        if ns not in self.namespaces():
            sh("ip", "netns", "add", ns)
        if not _exists("link", veth):
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", ns, "link", "set", "eth0", "address", self.mac(index))
            sh("ip", "-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "replace", "default", "via", self.gateway)

    def remove_host(self, index: int) -> None:
        ns = self.netns(index)
        if ns in self.namespaces():
            sh("ip", "netns", "del", ns)  # takes the veth pair with it
        if _exists("link", self.veth(index)):  # the namespace's deletion may take it meanwhile
            sh("ip", "link", "del", self.veth(index), check=False)
        if _exists("link", self.veth(index)):
            raise FleetError(f"{self.veth(index)} is still there after its host was removed")

    def down(self) -> None:
        for ns in self.namespaces():
            sh("ip", "netns", "del", ns)
        for link in self.links():
            sh("ip", "link", "del", link, check=False)

    def namespaces(self) -> list[str]:
        names = [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]
        return [n for n in names if n.startswith(f"{self.prefix}-")]

    def links(self) -> list[str]:
        out = sh("ip", "-o", "link", "show")
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
        return [n for n in names if n.startswith(self.prefix)]

    def pids(self, index: int) -> list[int]:
        """Every process in the host's network namespace (all of the host's processes)."""
        return netns_pids(self.netns(index))

    # faults on the link

    def cut(self, index: int) -> None:
        sh("ip", "link", "set", self.veth(index), "down")

    def restore(self, index: int) -> None:
        sh("ip", "link", "set", self.veth(index), "up")

    def delay(self, index: int, ms: int) -> None:
        sh("tc", "qdisc", "replace", "dev", self.veth(index), "root", "netem", "delay", f"{ms}ms")

    def undelay(self, index: int) -> None:
        sh("tc", "qdisc", "del", "dev", self.veth(index), "root", check=False)


def netns_pids(name: str) -> list[int]:
    """Every process in network namespace `name` (none when it does not exist)."""
    return [int(p) for p in sh("ip", "netns", "pids", name, check=False).split()]


def _exists(kind: str, name: str) -> bool:
    return subprocess.run(["ip", kind, "show", name], capture_output=True, check=False).returncode == 0
