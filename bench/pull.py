"""Pull mode at fleet scale: N fleet hosts each run `opsagent daemon` pulling policies
over SSH from a git server on one more fleet host; a real Prometheus scrapes them all.

Prints, for a few commits: the time from `git push` returning to each host running the
new release (read on the host's disk), split into waiting for the next pull, fetching and
validating, and the run; when Prometheus sees every host on the commit; a broken commit
refused on every host; the fleet's compliance from the shipped dashboard's query; each
daemon's idle CPU and RSS (daemon and fork server, as /proc has them).

Run by hand as root (not in CI; tests/integration/test_pull_fleet.py checks the same
behaviour):
    .venv/bin/python bench/pull.py [--hosts 10] [--interval 10s] [--commits 5] [--idle 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.core.durations import parse_duration  # noqa: E402
from tests.fleet.host import Host  # noqa: E402
from tests.fleet.pull import POLICY, PORT, PullFleet, usage  # noqa: E402
from tests.fleet.reaper import owned  # noqa: E402
from tests.support.prometheus import RULES, Prometheus, panel  # noqa: E402


def stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def phases(pf: PullFleet, h: Host, commit: str, pushed: float) -> tuple[float, float, float]:
    """From the host's log: seconds from the push to the fetch that brought the commit
    (the wait for the next pull, and the fetch), from there to the set loaded, and the run."""
    deadline = time.monotonic() + 60
    while True:  # the release is on disk a moment before its run is logged
        events = pf.events(h)
        fetched = [e for e in events if e.get("event") == "pull_new" and e.get("commit") == commit]
        loaded = [e for e in events if e.get("event") == "reload_ok"
                  and f"pulled {commit[:12]}" in str(e["message"])]
        after = [e for e in events if loaded and stamp(str(e["time"])) >= stamp(str(loaded[0]["time"]))]
        started = [e for e in after if e.get("event") == "run_started"]
        ended = [e for e in after if e.get("event") == "run_finished"]
        if (fetched and loaded and started and ended) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    at = [stamp(str(e[0]["time"])) for e in (fetched, loaded, started, ended)]
    return at[0] - pushed, at[1] - at[0], at[3] - at[2]


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):5.2f} s, min {min(values):5.2f}, "
            f"max {max(values):5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--interval", default="10s", help="pull.interval of every daemon")
    parser.add_argument("--commits", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds to measure idle CPU over")
    parser.add_argument("--cold", action="store_true", help="warm_runs: false on every host")
    parser.add_argument("--slot", type=int, default=20, help="fleet slot (10.213.SLOT.0/24)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsagent-pull-bench-"))
    with owned(args.slot) as fleet:
        pf = PullFleet(fleet, work, interval=args.interval, warm=not args.cold)
        return bench(pf, args, parse_duration(args.interval))


def bench(pf: PullFleet, args: argparse.Namespace, interval: float) -> int:
    prom = None
    try:
        started = time.monotonic()
        pf.up(args.hosts)
        pf.wait_release("v1", timeout=300)
        print(f"{args.hosts} hosts and a git server up, every daemon started and converged to "
              f"v1 in {time.monotonic() - started:.1f} s")
        prom = Prometheus(pf.work / "prometheus", [f"{h.address}:{PORT}" for h in pf.agents],
                          job="opsagent", rules=RULES, interval="15s")
        prom.wait_for(f'count(up{{job="opsagent"}} == 1) == {args.hosts}', timeout=120)
        print(f"pull interval {interval:g} s; each commit pushed at a random moment of it; "
              f"Prometheus scrapes every 15 s\n")

        worst = []
        for n in range(2, args.commits + 2):
            time.sleep(random.uniform(0, interval))
            commit = pf.commit(f"v{n}", f"release v{n}")
            pushed_mono, pushed = time.monotonic(), time.time()
            at = pf.wait_release(f"v{n}", timeout=interval + 120)
            took = [t - pushed_mono for t in at.values()]
            seen = f'count(opsagent_pull_commit_info{{commit="{commit}"}}) == {args.hosts}'
            prom.wait_for(seen, timeout=120)
            in_prom = time.monotonic() - pushed_mono
            parts = [phases(pf, h, commit, pushed) for h in pf.agents]
            worst.append(max(took))
            print(f"commit v{n}: every host on it {max(took):5.2f} s after the push "
                  f"(hosts: {summary(took)}); Prometheus shows all on it after {in_prom:.1f} s")
            print(f"  waiting for the pull {summary([p[0] for p in parts])}")
            print(f"  fetch to loaded      {summary([p[1] for p in parts])}")
            print(f"  run                  {summary([p[2] for p in parts])}")
        aim = interval + statistics.median(p[2] for p in parts) + 2.0  # the last commit's runs
        print(f"\ncommit to every host compliant: worst {max(worst):.2f} s, median of commits "
              f"{statistics.median(worst):.2f} s (aim: one interval + one run + validation "
              f"~{aim:.1f} s)")

        good = commit
        broken = pf.commit("", "a typo", (POLICY % {"release": "v99"}).replace("every", "evry"))
        pushed_mono = time.monotonic()
        prom.wait_for(f"({panel('Rejected policy reloads')}) == {args.hosts}", timeout=interval + 120)
        kept = [pf.release(h) for h in pf.agents]
        on_good = len(prom.query(f'opsagent_pull_commit_info{{commit="{good}"}}'))
        print(f"broken commit {broken[:12]}: refused on {args.hosts}/{args.hosts} hosts after "
              f"{time.monotonic() - pushed_mono:.1f} s (dashboard 'Rejected policy reloads'); "
              f"releases kept: {sorted(set(kept))}; hosts on the last good commit: {on_good}")
        compliance = prom.query(panel("Fleet compliance"))[0]["value"][1]
        print(f"fleet compliance (dashboard 'Fleet compliance'): {compliance}")

        time.sleep(5)
        before = {h.name: usage(pf.daemon_pids(h)) for h in pf.agents}
        time.sleep(args.idle)
        after = {h.name: usage(pf.daemon_pids(h)) for h in pf.agents}
        own = [(after[n][0] - before[n][0]) / args.idle * 100 for n in before]
        spawned = [(after[n][1] - before[n][1]) / args.idle * 100 for n in before]
        rss = [after[n][2] / 1024 for n in after]
        print(f"idle, {args.idle:g} s ({args.idle / interval:.0f} pulls each), per host: CPU of "
              f"the daemon and fork server median {statistics.median(own):.2f} %, max "
              f"{max(own):.2f} %; of what they started (git fetch over SSH) median "
              f"{statistics.median(spawned):.2f} %, max {max(spawned):.2f} %; RSS (daemon and "
              f"fork server) median {statistics.median(rss):.1f} MiB, max {max(rss):.1f} MiB")
        return 0
    finally:
        if prom is not None:
            prom.stop()


if __name__ == "__main__":
    sys.exit(main())
