"""The daemon will run the engine for months: runs must not leak fds, threads or memory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent.engine.run import execute
from agent.inventory import load_inventory
from agent.plan import build_plan
from agent.policy.validate import load_policies
from tests.integration.conftest import requires_sshd
from tests.support.project import write_project

pytestmark = requires_sshd


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_fifty_runs_leak_nothing(loopback: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path)
    plan = build_plan(load_policies([root / "policies"]), load_inventory(loopback), "loopback",
                      root / "templates")
    samples = []
    for run in range(50):
        result = execute(plan, check=run % 2 == 1)
        assert not result.failed
        samples.append((len(os.listdir("/proc/self/fd")), threading.active_count(), rss_kib()))
    fds, threads, rss = zip(*samples, strict=True)
    # closing transports ends their threads a moment later: compare peaks, not single samples
    assert max(fds[10:]) <= max(fds[:10]), f"file descriptors grew: {fds}"
    assert max(threads[10:]) <= max(threads[:10]), f"threads grew: {threads}"
    assert rss[-1] - rss[9] < 4096, f"RSS grew {rss[-1] - rss[9]} KiB over 40 runs: {rss}"
    print(f"\nRSS KiB after runs 1/10/25/50: {rss[0]}/{rss[9]}/{rss[24]}/{rss[49]}; "
          f"fds {fds[0]}..{max(fds)}; threads {min(threads)}..{max(threads)}")
