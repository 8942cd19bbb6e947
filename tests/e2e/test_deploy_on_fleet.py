"""The deploy kind on the fleet: four app hosts running a small HTTP app (restarted by the
policy's activate task), an nginx host in front of them (Debian's nginx-light), a real
Prometheus on the controller scraping the apps, and clients sending requests through
nginx during every deploy. A rolling deploy of a good version loses no request; a canary
of a version answering 5 % errors is caught by the Prometheus analysis and rolled back,
only the canary host ever served it, and within 15 s of its first answer every request
is on the stable version again; a host cut off mid-deploy counts against the deploy's
max_fail_percentage while the others still get the release."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet, faults
from tests.support import nginx, prometheus
from tests.support.fleetapp import release
from tests.support.project import opsagent

pytestmark = pytest.mark.fleet
QUERY = ('sum(rate(http_requests_total{code!~"5..",version="{{ version }}"}[15s])) / '
         'sum(rate(http_requests_total{version="{{ version }}"}[15s]))')
POLICY = """\
apiVersion: opsagent/v1
kind: deploy
metadata: {name: shop}
targets: [app]
spec:
  version: "{{ release | default('0') }}"
  artifact: {src: "dist/shop-{{ release | default('0') }}.tar.gz"}
  path: /srv/shop
  keep_releases: 3
  activate:
    tasks:
      - name: restart the app
        server.shell: {commands: ["sh /srv/shop/current/restart.sh"]}
  health: {http: {url: "http://{{ addr }}:8080/up"}, retries: 5, delay: 1}
  traffic: {nginx: {host: LB, upstream: shop_api, address: "{{ addr }}", port: 8080, drain_timeout: 10s}}
  strategy: STRATEGY
  analysis:
    - name: success-rate
      prometheus: {address: "PROM", query: 'QUERY'}
      success: ">= 0.99"
"""
ROLLING = "{rolling: {batch: [1], max_fail_percentage: 25}}"
CANARY = ("{canary: {steps: [{hosts: 1}, {analysis: {interval: 5s, count: 6, "
          "inconclusive_limit: 2}}, {hosts: '100%'}]}}")
SITE = """\
server {
    listen 8000;
    location / { proxy_pass http://shop_api; }
}
server {
    listen 8001;
    location / { proxy_pass http://shop_bg; }
}
"""
BLUE_GREEN = """\
apiVersion: opsagent/v1
kind: deploy
metadata: {name: shop-bg}
targets: [app]
spec:
  version: "{{ release | default('0') }}"
  artifact: {src: "dist/shop-{{ release | default('0') }}.tar.gz"}
  path: /srv/shop-bg
  activate:
    tasks:
      - name: start the new slot
        server.shell: {commands: ["sh /srv/shop-bg/slots/{{ slot }}/restart.sh {{ slot_port }}"]}
  health: {http: {url: "http://{{ addr }}:{{ slot_port }}/up"}, retries: 5, delay: 1}
  traffic: {nginx: {host: LB, upstream: shop_bg, address: "{{ addr }}", drain_timeout: 10s}}
  strategy:
    blue_green:
      slots: {blue: 8081, green: 8082}
      scale_down_delay: DELAY
      scale_down:
        tasks:
          - name: stop the old slot
            server.shell: {commands: ["kill $(cat /srv/app-{{ old_slot_port }}.pid) || true"]}
"""


class Shop:
    def __init__(self, fleet: Fleet, root: Path, apps: list[str], lb: str,
                 prom: prometheus.Prometheus) -> None:
        self.fleet, self.root, self.apps, self.lb, self.prom = fleet, root, apps, lb, prom
        self.inventory = root / "inventory.yml"
        text = fleet.inventory.read_text()
        head, _, _ = text.partition("hosts:\n")
        lines = [head + "hosts:"]
        for name in [*apps, lb]:
            addr = fleet.host(name).address
            lines.append(f"  {name}: {{ssh: {{hostname: {addr}}}, vars: {{addr: {addr}}}}}")
        lines.append(f"groups:\n  app: {{hosts: [{', '.join(apps)}]}}")
        self.inventory.write_text("\n".join(lines) + "\n")
        for version, mode in (("1.0", "healthy"), ("1.1", "healthy"), ("1.2", "healthy"),
                              ("2.0-bad", "failing")):
            release(root / "dist", "shop", version, mode)

    @property
    def url(self) -> str:
        return f"http://{self.fleet.host(self.lb).address}:8000/"

    def write(self, strategy: str) -> None:
        (self.root / "policies").mkdir(exist_ok=True)
        (self.root / "policies" / "shop.yml").write_text(
            POLICY.replace("STRATEGY", strategy).replace("LB", self.lb)
            .replace("PROM", self.prom.address).replace("QUERY", QUERY))

    def deploy(self, verb: str, *args: str, policy: str = "shop") -> subprocess.CompletedProcess[str]:
        return opsagent(self.root, "deploy", verb, policy, "policies", "-i", str(self.inventory),
                        "--state-dir", str(self.root / "state"), *args)

    def background(self, *args: str, policy: str = "shop") -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "agent", "deploy", "start", policy,
                                 "policies", "-i", str(self.inventory), "--state-dir",
                                 str(self.root / "state"), *args], cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_phase(self, text: str, policy: str = "shop") -> None:
        deadline = time.monotonic() + 120
        while text not in self.deploy("status", policy=policy).stdout:
            assert time.monotonic() < deadline, self.deploy("status", policy=policy).stdout
            time.sleep(0.2)

    def current(self, name: str) -> str:
        return self.fleet.run(name, "readlink /srv/shop/current", check=False).stdout.strip()


@pytest.fixture(scope="module")
def shop(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    added = [h.name for h in fleet.up(2)]
    root = tmp_path_factory.mktemp("shop")
    apps, lb = ["h1", "h2", "h3", added[0]], added[1]
    for name in apps[:3]:
        fleet.reset(name)
    prom = prometheus.Prometheus(root / "prom", [f"{fleet.host(n).address}:8080" for n in apps])
    try:
        for name, port in (("shop_api", 8080), ("shop_bg", 8081)):
            upstream = f"upstream {name} {{\n" + "".join(
                f"    server {fleet.host(n).address}:{port};\n" for n in apps) + "}\n"
            fleet.run(lb, f"cat > /etc/nginx/conf.d/opsagent-{name}.conf <<'EOF'\n{upstream}EOF\n")
        fleet.run(lb, f"cat > /etc/nginx/conf.d/shop.conf <<'EOF'\n{SITE}EOF\nnginx")
        shop = Shop(fleet, root, apps, lb, prom)
        shop.write(ROLLING)
        first = shop.deploy("start", "--set", "release=1.0")
        assert first.returncode == 0, first.stdout + first.stderr
        yield shop
    finally:
        prom.stop()
        for name in added:
            fleet.remove(name)


def test_a_rolling_deploy_through_nginx_loses_no_request(shop: Shop) -> None:
    shop.write(ROLLING)
    loads = [nginx.Load(shop.url) for _ in range(3)]
    done = shop.deploy("start", "--set", "release=1.1")
    time.sleep(0.5)
    codes: Counter[int] = Counter()
    for load in loads:
        codes.update(load.stop())
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(codes) == {200} and codes[200] > 200, codes  # not one request lost
    assert {shop.current(n) for n in shop.apps} == {"releases/1.1"}
    assert sum(load.versions["1.1"] for load in loads) > 0


def test_a_bad_canary_is_caught_by_prometheus_and_only_it_ever_served_it(shop: Shop) -> None:
    shop.write(CANARY)
    shop.prom.wait_for('http_requests_total{version="1.1"}')
    loads = [nginx.Load(shop.url) for _ in range(3)]
    bad = shop.deploy("start", "--set", "release=2.0-bad")
    time.sleep(1)
    for load in loads:
        load.stop()
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "analysis failed: success-rate" in bad.stdout
    assert {shop.current(n) for n in shop.apps} == {"releases/1.1"}
    seen = sorted(at for load in loads for at, version in load.seen if version == "2.0-bad")
    assert seen, "the canary never took requests"
    assert seen[-1] - seen[0] <= 15, f"bad answers for {seen[-1] - seen[0]:.1f} s"
    served = {r["metric"]["instance"] for r in shop.prom.query(
        'last_over_time(http_requests_total{version="2.0-bad"}[10m])')}
    assert served == {f"{shop.fleet.host(shop.apps[0]).address}:8080"}  # the canary alone
    shown = shop.deploy("status").stdout
    assert "rolled back" in shown and "success-rate: failed" in shown


def test_a_host_cut_off_mid_deploy_counts_against_the_failure_budget(shop: Shop) -> None:
    shop.write(ROLLING)
    victim = shop.apps[2]
    proc = shop.background("--set", "release=1.2", "--timeout", "5")
    shop.wait_phase("wave 2 of 4")
    with faults.cut_off(shop.fleet, victim):
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out  # 1 of 4 hosts failed: within 25 %, but not a success
    others = [n for n in shop.apps if n != victim]
    assert {shop.current(n) for n in others} == {"releases/1.2"}, out  # the rest got it
    assert shop.current(victim) == "releases/1.1"
    phases = shop.deploy("status").stdout
    assert f"{victim}" in phases and "failed" in phases
    shop.write(ROLLING)
    healed = shop.deploy("start", "--set", "release=1.2")  # once it is back, a second start
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert {shop.current(n) for n in shop.apps} == {"releases/1.2"}


def test_blue_green_on_the_fleet_loses_no_request_and_an_abort_switches_back(shop: Shop) -> None:
    (shop.root / "policies" / "shop-bg.yml").write_text(
        BLUE_GREEN.replace("LB", shop.lb).replace("DELAY", "1s"))
    first = shop.deploy("start", "--set", "release=1.0", policy="shop-bg")
    assert first.returncode == 0, first.stdout + first.stderr
    bg = f"http://{shop.fleet.host(shop.lb).address}:8001/"
    loads = [nginx.Load(bg) for _ in range(3)]
    done = shop.deploy("start", "--set", "release=1.1", policy="shop-bg")
    time.sleep(0.5)
    codes: Counter[int] = Counter()
    for load in loads:
        codes.update(load.stop())
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(codes) == {200} and codes[200] > 100, codes  # not one request lost
    assert sum(load.versions["1.1"] for load in loads) > 0
    # the old slot was scaled down by the scale_down task
    assert shop.fleet.run(shop.apps[0], "ss -ltn", check=False).stdout.count(":8081 ") == 0

    (shop.root / "policies" / "shop-bg.yml").write_text(
        BLUE_GREEN.replace("LB", shop.lb).replace("DELAY", "60s"))
    proc = shop.background("--set", "release=1.2", policy="shop-bg")
    shop.wait_phase("keeping the old slots", policy="shop-bg")
    load = nginx.Load(bg)
    time.sleep(0.5)
    assert load.versions["1.2"] > 0 and "1.1" not in load.versions
    assert shop.deploy("abort", policy="shop-bg").returncode == 0
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    load.versions.clear()
    time.sleep(0.5)
    codes = load.stop()
    assert load.versions["1.1"] > 0 and "1.2" not in load.versions, load.versions  # all back
    assert set(codes) == {200}, codes


def test_a_sigkilled_controller_on_the_fleet_resumes_where_it_stopped(shop: Shop) -> None:
    shop.write("{canary: {steps: [{hosts: 1}, {pause: forever}, {hosts: '100%'}]}}")
    release(shop.root / "dist", "shop", "1.3")
    proc = shop.background("--set", "release=1.3")
    shop.wait_phase("pausing")
    proc.kill()
    proc.wait()
    shown = shop.deploy("status").stdout
    assert "none running (opsagent deploy resume goes on)" in shown, shown
    assert [shop.current(n) for n in shop.apps].count("releases/1.3") == 1
    assert shop.deploy("promote").returncode == 0
    resumed = shop.deploy("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {shop.current(n) for n in shop.apps} == {"releases/1.3"}
