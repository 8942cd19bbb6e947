"""The daemon's figures: start time of `opsagent --help`, idle RSS, RSS across scheduled
runs (it must not grow), and /metrics scrape time with 1,000 hosts x 20 policies.

Run by hand (not in CI):
    .venv/bin/python bench/daemon.py help|idle|scrape
    .venv/bin/python bench/daemon.py runs [--runs 1000] [--cold]
    .venv/bin/python bench/daemon.py fleet [--hosts 500] [--policies 4] [--minutes 3]
"""

from __future__ import annotations

import argparse
import calendar
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.core.results import HostResult, OpResult, RunResult, Status  # noqa: E402
from agent.state.store import Store  # noqa: E402
from tests.support.daemon import Daemon, wait_for  # noqa: E402

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: %(name)s}
targets: [all]
%(schedule)s
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
"""


def project(root: Path, schedules: list[str]) -> Path:
    (root / "policies").mkdir(parents=True)
    (root / "templates").mkdir()
    for i, schedule in enumerate(schedules):
        (root / "policies" / f"p{i}.yml").write_text(POLICY % {"name": f"p{i}", "schedule": schedule})
    (root / "inventory.yml").write_text(f"vars: {{sandbox: {root / 'sandbox'}}}\nhosts: {{'@local': {{}}}}\n")
    (root / "agent.yml").write_text("policies: [policies]\ninventory: inventory.yml\nstate_dir: state\n"
                                    "log_format: json\nconcurrency: 2\n")
    return root


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bench_help(reps: int = 20) -> None:
    opsagent = str(Path(sys.executable).with_name("opsagent"))
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([opsagent, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    print(f"opsagent --help: median {statistics.median(times) * 1000:.0f} ms over {reps} runs "
          f"(min {min(times) * 1000:.0f} ms)")


def bench_idle() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(project(Path(tmp), ["schedule: {every: 1h}"]))
        try:
            d.up()
            wait_for(lambda: d.count("run_finished") >= 1, what="the first run")
            time.sleep(5)
            print(f"daemon idle RSS: {rss_kib(d.proc.pid) / 1024:.1f} MiB (1 policy, after its first run)")
        finally:
            d.stop()


def cpu_seconds(pid: int) -> float:
    """CPU of a process and of the children it waited for (/proc/PID/stat utime..cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def bench_runs(total: int, cold: bool) -> None:
    """RSS of the daemon and its fork server, and CPU per run (the daemon, the server and
    every run: each is waited for by one of them), 4 policies every second."""
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), ["schedule: {every: 1s}"] * 4)
        if cold:
            with (root / "agent.yml").open("a") as f:
                f.write("warm_runs: false\n")
        d = Daemon(root)
        try:
            d.up()
            wait_for(lambda: d.count("run_finished") >= 8, timeout=60, what="8 runs")
            ready = [e for e in d.events() if e.get("event") == "warm_ready"]
            server = int(ready[0]["message"].split("pid ")[1].split(")")[0]) if ready else None
            pids = [d.proc.pid, *([server] if server else [])]
            base_runs, base_cpu = d.count("run_finished"), sum(map(cpu_seconds, pids))
            marks = sorted({base_runs + 10, total // 10, total // 2, total} - {0})
            started = time.monotonic()
            for mark in marks:
                wait_for(lambda mark=mark: d.count("run_finished") >= mark, timeout=3600,
                         what=f"{mark} runs")
                runs, cpu = d.count("run_finished"), sum(map(cpu_seconds, pids))
                per_run = (cpu - base_cpu) / max(1, runs - base_runs)
                rss = " + ".join(f"{rss_kib(p) / 1024:.1f}" for p in pids)
                print(f"after {runs:5d} runs ({time.monotonic() - started:6.0f} s): RSS "
                      f"{rss} MiB (daemon{' + fork server' if server else ''}); "
                      f"CPU {per_run:.3f} s per run", flush=True)
            finished = [e for e in d.events() if e.get("event") == "run_finished"]
            print(f"{'cold' if cold else 'warm'} runs: {sum(e['warm'] for e in finished)} of "
                  f"{len(finished)} forked warm; failed: {sum(1 for e in finished if e['exit_code'])}"
                  f"; median wall time {statistics.median(e['seconds'] for e in finished):.3f} s")
        finally:
            d.stop()


FLEET_POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: %(name)s}
targets: [all]
schedule: {every: 1m}
spec:
  tasks:
    - files.directory: {path: "{{ root }}/%(name)s"}
%(tasks)s
"""


def bench_fleet(hosts: int, policies: int, minutes: int) -> None:
    """hosts x policies every minute on loopback SSH hosts: per minute, how long until
    every run of that minute ended (a share of the minute), and how late each started."""
    from tests.support import sshd

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = sshd.Keys.make(root / "keys")
        server = sshd.Sshd(keys, root / "sshd").start()
        try:
            server.wait()
            (root / "policies").mkdir()
            (root / "templates" / "files").mkdir(parents=True)
            for i in range(5):
                (root / "templates" / "files" / f"f{i}").write_text(f"file {i}\n" * 20)
            tasks = "\n".join(
                [f'    - files.put: {{src: files/f{i}, dest: "{{{{ root }}}}/%(name)s/f{i}"}}'
                 for i in range(5)] +
                [f'    - files.line: {{path: "{{{{ root }}}}/%(name)s/conf", line: "k{i} = {i}"}}'
                 for i in range(3)])
            for p in range(policies):
                name = f"p{p}"
                (root / "policies" / f"{name}.yml").write_text(
                    FLEET_POLICY % {"name": name, "tasks": tasks % {"name": name}})
            names = {f"h{i:03}": server.port for i in range(hosts)}
            (root / "inventory.yml").write_text(sshd.inventory_yaml(
                keys, names, {n: {"root": str(root / "out" / n)} for n in names}))
            (root / "agent.yml").write_text(
                "policies: [policies]\ninventory: inventory.yml\nstate_dir: state\n"
                f"log_format: json\nconcurrency: {policies}\n")
            d = Daemon(root)
            try:
                d.up()
                wait_for(lambda: d.count("run_finished") >= policies, timeout=600,
                         what="the first minute's runs (a first run: everything changes)")
                first = d.count("run_finished")
                wait_for(lambda: d.count("run_finished") >= first + minutes * policies,
                         timeout=120 * minutes + 600, what=f"{minutes} more minutes of runs")
                _fleet_report(d, policies, first)
            finally:
                d.stop()
        finally:
            server.stop()


def _fleet_report(d: Daemon, policies: int, skip: int) -> None:
    """Per policy: its converged runs' length and the gap between its starts (60 s when
    on time). The minute's share: the converged runs of all policies, which take turns
    on each host (host locks), against the 60 s they are due in."""
    events = d.events()
    started = {e["pid"]: e for e in events if e.get("event") == "run_started"}
    finished = [e for e in events if e.get("event") == "run_finished"]
    by_policy: dict[str, list[tuple[float, float]]] = {}
    for f in finished:
        by_policy.setdefault(f["policy"], []).append((_ts(started[f["pid"]]), f["seconds"]))
    work = 0.0
    for policy, runs in sorted(by_policy.items()):
        runs.sort()
        gaps = [b[0] - a[0] for a, b in zip(runs, runs[1:], strict=False)]
        converged = [seconds for _, seconds in runs[1:]]  # the first run changes everything
        work += statistics.median(converged) if converged else runs[0][1]
        print(f"{policy}: first run {runs[0][1]:.0f} s; converged runs "
              f"{', '.join(f'{c:.0f}' for c in converged) or '-'} s; starts "
              f"{', '.join(f'{g:.0f}' for g in gaps) or '-'} s apart (60 when on time)")
    late = sum(1 for runs in by_policy.values() for a, b in zip(runs, runs[1:], strict=False)
               if b[0] - a[0] > 61)
    print(f"a minute's converged work: {work:.0f} s, {work / 60:.0%} of the minute; "
          f"late starts: {late}; failed runs: {sum(1 for f in finished if f['exit_code'])}; "
          f"daemon RSS {rss_kib(d.proc.pid) / 1024:.1f} MiB")


def _ts(event: dict[str, Any]) -> float:
    whole, _, fraction = event["time"].rstrip("Z").partition(".")  # 2026-12-06T11:21:33.594Z
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


def bench_scrape(hosts: int = 1000, policies: int = 20, reps: int = 10) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), [""])  # one unscheduled policy: the daemon only serves metrics
        started = time.perf_counter()
        with Store(root / "state") as store:
            run = RunResult([HostResult(f"host-{h:04}.example.org", [
                OpResult(f"policy-{p:02}", "tasks", "step", "files.line",
                         Status.CHANGED if (h + p) % 17 == 0 else Status.OK, duration=0.05)
                for p in range(policies)]) for h in range(hosts)], False, 10.0)
            store.record(run, command="apply", source="bench")
        print(f"store filled with {hosts} hosts x {policies} policies in "
              f"{time.perf_counter() - started:.1f} s")
        d = Daemon(root)
        try:
            d.up()
            times, size = [], 0
            for _ in range(reps):
                t0 = time.perf_counter()
                status, text = d.get("/metrics")
                times.append(time.perf_counter() - t0)
                assert status == 200
                size = len(text)
            samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            print(f"/metrics with {hosts} x {policies}: {samples} samples, {size / 1e6:.1f} MB; "
                  f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                  f"over {reps} scrapes; daemon RSS {rss_kib(d.proc.pid) / 1024:.1f} MiB")
        finally:
            d.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("help", "idle", "runs", "scrape", "fleet"))
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--policies", type=int, default=4)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cold", action="store_true", help="runs: with warm_runs: false")
    args = parser.parse_args()
    {"help": bench_help, "idle": bench_idle, "scrape": bench_scrape,
     "runs": lambda: bench_runs(args.runs, args.cold),
     "fleet": lambda: bench_fleet(args.hosts, args.policies, args.minutes)}[args.what]()


if __name__ == "__main__":
    main()
