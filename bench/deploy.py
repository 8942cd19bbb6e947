"""The deploy kind's figures on loopback: hosts are sshd servers, each with the small test
app (tests/support/deployapp.py, one instance per blue-green slot), behind a real nginx,
with clients sending requests through nginx all along.

Run by hand (not in CI):  .venv/bin/python bench/deploy.py [--cutovers 100] [--canaries 100]
                          [--faults 5] [--hosts 8] [--clients 2]

Printed, in one run:
- blue-green: requests lost (not 200) per cutover over --cutovers cutovers (aim: 0), with
  --clients clients sending requests one after another;
- canary: time from a fault (the canary starts answering 500 after its health check) to
  the last bad answer through nginx, with a 5 s analysis interval (aim: under 15 s);
- rollback: `opsagent deploy rollback` of 8 hosts, with nginx draining (two halves) and
  without traffic (aim: under 5 s);
- false aborts: canaries of a version identical to the stable one, analysed by probes
  (success rate and p99), that did not succeed (aim: at most 1 in 100).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import nginx, sshd  # noqa: E402
from tests.support.deployapp import apps, release  # noqa: E402

POLICY = """\
apiVersion: opsagent/v1
kind: deploy
metadata: {{name: app}}
targets: [app]
spec:
  version: "{{{{ release | default('0') }}}}"
  artifact: {{src: "dist/app-{{{{ release | default('0') }}}}.tar.gz"}}
  path: "{{{{ sandbox }}}}/app"
  keep_releases: 3
  health: {{http: {{url: "http://127.0.0.1:{{{{ {port} }}}}/up"}}, retries: 2, delay: 1}}
  traffic:
    nginx: {{host: lb, upstream: app_up, address: "{address}", config: "{config}", pid: "{pid}",
            nginx: "{nginx}", drain_timeout: 5s}}
  strategy: {strategy}
  analysis:
    - name: probe
      http_probe: {{url: "http://127.0.0.1:{{{{ {port} }}}}/", requests: 20}}
      success: "success_rate >= 0.99 and p99 <= 300ms"
"""


class Bench:
    def __init__(self, work: Path, hosts: int, clients: int) -> None:
        self.work, self.names = work, [f"h{i}" for i in range(1, hosts + 1)]
        keys = sshd.Keys.make(work / "keys")
        self.servers = [sshd.Sshd(keys, work / "sshd" / n).start() for n in self.names]
        for server in self.servers:
            server.wait()
        self.keys, self.clients = keys, clients

    def site(self, blue_green: bool) -> tuple[Path, dict[str, int], nginx.Nginx, Any]:
        root = Path(tempfile.mkdtemp(dir=self.work))
        slots = ("blue", "green") if blue_green else ("",)
        paths = {f"{n}{'-' + s if s else ''}": root / "hosts" / n / "app" / (f"slots/{s}" if s else "current")
                 for n in self.names for s in slots}
        running = apps(paths)
        started = running.__enter__()
        host_vars = {n: {"sandbox": str(root / "hosts" / n),
                         **({"blue_port": str(started[f"{n}-blue"].port),
                             "green_port": str(started[f"{n}-green"].port)} if blue_green
                            else {"app_port": str(started[n].port)})} for n in self.names}
        ports = {n: s.port for n, s in zip(self.names, self.servers, strict=True)}
        (root / "inventory.yml").write_text(
            sshd.inventory_yaml(self.keys, {**ports, "lb": self.servers[0].port}, host_vars)
            + f"groups:\n  app: {{hosts: [{', '.join(self.names)}]}}\n")
        first = [f"127.0.0.1:{started[n + ('-blue' if blue_green else '')].port}" for n in self.names]
        lb = nginx.Nginx(root / "nginx", "app_up", first)
        return root, {k: v.port for k, v in started.items()}, lb, running

    def write(self, root: Path, lb: nginx.Nginx, strategy: str, blue_green: bool) -> None:
        (root / "policies").mkdir(exist_ok=True)
        (root / "policies" / "app.yml").write_text(POLICY.format(
            port="slot_port" if blue_green else "app_port", config=lb.upstream_file, pid=lb.pid,
            nginx=lb.command, strategy=strategy,
            address="127.0.0.1" if blue_green else "127.0.0.1:{{ app_port }}"))

    def deploy(self, root: Path, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", "deploy", verb, "app", "policies",
                               "-i", str(root / "inventory.yml"), "--state-dir", str(root / "state"),
                               *args], cwd=root, capture_output=True, text=True, timeout=600)


def cutovers(bench: Bench, count: int) -> None:
    root, _, lb, running = bench.site(blue_green=True)
    bench.write(root, lb, "{blue_green: {slots: {blue: '{{ blue_port }}', green: '{{ green_port }}'}, "
                "scale_down_delay: 0s}}", True)
    for i in range(count + 1):
        release(root / "dist", f"v{i}")
    assert bench.deploy(root, "start", "--set", "release=v0").returncode == 0
    lost, requests, seconds = [], 0, []
    for i in range(1, count + 1):
        loads = [nginx.Load(f"http://127.0.0.1:{lb.port}/") for _ in range(bench.clients)]
        started = time.monotonic()
        done = bench.deploy(root, "start", "--set", f"release=v{i}")
        seconds.append(time.monotonic() - started)
        codes: Counter[int] = Counter()
        for load in loads:
            codes.update(load.stop())
        if done.returncode != 0:
            print(f"  cutover {i} failed (exit {done.returncode}): {(done.stdout + done.stderr)[-400:]}")
        lost.append(sum(n for code, n in codes.items() if code != 200))
        requests += sum(codes.values())
    lb.stop()
    running.__exit__(None, None, None)
    rate = requests / sum(seconds)
    print(f"blue-green: {count} cutovers of {len(bench.names)} hosts, {requests} requests "
          f"({rate:.0f}/s through nginx): {sum(lost)} lost, {max(lost)} at most in one cutover; "
          f"a cutover (deploy start to verified) takes {statistics.median(seconds):.2f} s median")


def fault_to_stable(bench: Bench, runs: int) -> None:
    root, _, lb, running = bench.site(blue_green=False)
    steps = "{canary: {steps: [{hosts: 1}, {analysis: {interval: 5s, count: 6}}, {hosts: '100%'}]}}"
    bench.write(root, lb, "{rolling: {batch: ['100%']}}", False)
    release(root / "dist", "1.0")
    assert bench.deploy(root, "start", "--set", "release=1.0").returncode == 0
    bench.write(root, lb, steps, False)
    times = []
    for i in range(runs):
        version = f"bad-{i}"
        release(root / "dist", version)
        load = nginx.Load(f"http://127.0.0.1:{lb.port}/")
        proc = subprocess.Popen([sys.executable, "-m", "agent", "deploy", "start", "app", "policies",
                                 "-i", str(root / "inventory.yml"), "--state-dir", str(root / "state"),
                                 "--set", f"release={version}"], cwd=root, stdout=subprocess.DEVNULL)
        while not _in_phase(bench, root, "analysis 1 of"):
            time.sleep(0.05)
        (root / "hosts" / "h1" / "app" / "releases" / version / "status").write_text("500")
        fault = time.monotonic()
        proc.wait(120)
        load.stop()
        bad = [at for at, answer in load.seen if answer.startswith("HTTP 5")]
        times.append((max(bad) if bad else fault) - fault)
    lb.stop()
    running.__exit__(None, None, None)
    print(f"canary: fault to the last bad answer through nginx, interval 5 s, {runs} runs: "
          f"median {statistics.median(times):.1f} s, worst {max(times):.1f} s (aim: under 15 s)")


def _in_phase(bench: Bench, root: Path, text: str) -> bool:
    shown = bench.deploy(root, "status", "--json")
    return shown.returncode == 0 and text in json.loads(shown.stdout)["deploy"]["phase"]


def rollback_time(bench: Bench) -> None:
    root, _, lb, running = bench.site(blue_green=False)
    bench.write(root, lb, "{rolling: {batch: ['100%']}}", False)
    for version in ("1.0", "1.1"):
        release(root / "dist", version)
        assert bench.deploy(root, "start", "--set", f"release={version}").returncode == 0
    timed = []
    for to in ("1.0", "1.1", "1.0"):
        started = time.monotonic()
        done = bench.deploy(root, "rollback", "--to", to)
        timed.append(time.monotonic() - started)
        assert done.returncode == 0, done.stdout + done.stderr
    lb.stop()
    running.__exit__(None, None, None)
    print(f"rollback of {len(bench.names)} hosts with nginx draining (two halves), health "
          f"checked: median {statistics.median(timed):.2f} s (aim: under 5 s)")


def false_aborts(bench: Bench, runs: int) -> None:
    root, _, lb, running = bench.site(blue_green=False)
    bench.write(root, lb, "{rolling: {batch: ['100%']}}", False)
    release(root / "dist", "same-0")
    assert bench.deploy(root, "start", "--set", "release=same-0").returncode == 0
    bench.write(root, lb, "{canary: {steps: [{hosts: 1}, {analysis: {interval: 1s, count: 3}}, "
                "{hosts: '100%'}]}}", False)
    load = nginx.Load(f"http://127.0.0.1:{lb.port}/")
    aborted = 0
    for i in range(1, runs + 1):
        release(root / "dist", f"same-{i}")  # the same app, another version label
        done = bench.deploy(root, "start", "--set", f"release=same-{i}")
        aborted += done.returncode != 0
    load.stop()
    lb.stop()
    running.__exit__(None, None, None)
    print(f"false aborts: {aborted} of {runs} canaries of an identical version did not "
          f"succeed (aim: at most 1 in 100)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--cutovers", type=int, default=100)
    parser.add_argument("--faults", type=int, default=5)
    parser.add_argument("--canaries", type=int, default=100)
    parser.add_argument("--clients", type=int, default=2, help="clients sending requests "
                        "one after another through nginx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsagent-bench-deploy-") as work:
        bench = Bench(Path(work), args.hosts, args.clients)
        try:
            rollback_time(bench)
            fault_to_stable(bench, args.faults)
            cutovers(bench, args.cutovers)
            false_aborts(bench, args.canaries)
        finally:
            for server in bench.servers:
                server.stop()


if __name__ == "__main__":
    main()
