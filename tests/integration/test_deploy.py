"""The deploy kind on three hosts over real sshd on loopback, each with a small app that
serves from its `current` release: a rolling deploy of a good version verified on every
host and a second start changes nothing; a version failing its health check is rolled
back on exactly the host it reached, never counts as a release to roll back to, and the
hosts not reached never served it; a canary whose probe analysis fails is rolled back;
emergency rollback; keep_releases; a killed controller resumed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.conftest import requires_sshd
from tests.support import nginx, prometheus, sshd
from tests.support.daemon import free_port
from tests.support.deployapp import App, apps, release
from tests.support.project import opsagent

NAMES = ("h1", "h2", "h3")
POLICY = """\
apiVersion: opsagent/v1
kind: deploy
metadata: {name: app}
targets: [app]
spec:
  version: "{{ release | default('0') }}"
  artifact: {src: "dist/app-{{ release | default('0') }}.tar.gz"}
  path: "{{ sandbox }}/app"
  keep_releases: 2
  health: {http: {url: "http://127.0.0.1:{{ app_port }}/up"}, retries: 1, delay: 1}
  strategy: STRATEGY
  TRAFFIC
  analysis:
    - name: errors
      http_probe: {url: "http://127.0.0.1:{{ app_port }}/", requests: 20}
      success: "success_rate >= 0.99"
"""
ROLLING = "{rolling: {batch: [1, '100%']}}"
CANARY = "{canary: {steps: [{hosts: 1}, {analysis: {interval: 1s, count: 3}}, {hosts: '100%'}]}}"


class Site:
    def __init__(self, root: Path, inventory: Path, running: dict[str, App]) -> None:
        self.root, self.inventory, self.apps = root, inventory, running

    def write(self, strategy: str, traffic: str = "", analysis: str = "") -> None:
        (self.root / "policies").mkdir(exist_ok=True)
        text = POLICY.replace("STRATEGY", strategy).replace("TRAFFIC", traffic)
        if analysis:
            text = text[:text.index("  analysis:")] + analysis
        (self.root / "policies" / "app.yml").write_text(text)

    def deploy(self, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        return opsagent(self.root, "deploy", verb, "app", "policies", "-i", str(self.inventory),
                        "--state-dir", str(self.root / "state"), *args)

    def current(self, host: str) -> str | None:
        link = self.root / "hosts" / host / "app" / "current"
        return os.readlink(link).split("/")[-1] if link.is_symlink() else None

    def releases(self, host: str) -> list[str]:
        return sorted(p.name for p in (self.root / "hosts" / host / "app" / "releases").iterdir()
                      if not p.name.startswith("."))

    def status(self) -> dict[str, object]:
        proc = self.deploy("status", "--json")
        assert proc.returncode == 0, proc.stderr
        data: dict[str, object] = json.loads(proc.stdout)
        return data


@pytest.fixture
def site(keys: sshd.Keys, servers: list[sshd.Sshd], tmp_path: Path) -> Iterator[Site]:
    currents = {n: tmp_path / "hosts" / n / "app" / "current" for n in NAMES}
    with apps(currents) as running:
        host_vars = {n: {"sandbox": str(tmp_path / "hosts" / n), "app_port": str(running[n].port)}
                     for n in NAMES}
        hosts = {n: s.port for n, s in zip(NAMES, servers, strict=True)}
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(sshd.inventory_yaml(keys, {**hosts, "lb": servers[0].port}, host_vars)
                             + "groups:\n  app: {hosts: [h1, h2, h3]}\n")
        for version, status in (("1.0", 200), ("1.1", 200), ("1.2", 200), ("2.0-bad", 500)):
            release(tmp_path / "dist", version, status)
        yield Site(tmp_path, inventory, running)


@requires_sshd
def test_rolling_deploy_verifies_every_host_and_a_bad_version_is_rolled_back_where_it_went(
        site: Site) -> None:
    site.write(ROLLING)
    first = site.deploy("start", "--set", "release=1.0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert {site.current(n) for n in NAMES} == {"1.0"}
    state = site.status()
    assert state["deploy"]["status"] == "succeeded"  # type: ignore[index]
    assert {h["phase"] for h in state["hosts"]} == {"verified"}  # type: ignore[attr-defined]
    again = site.deploy("start", "--set", "release=1.0")
    assert again.returncode == 0 and "changed" not in _recap(site)
    assert site.deploy("start", "--set", "release=1.1").returncode == 0
    assert {site.current(n) for n in NAMES} == {"1.1"}

    bad = site.deploy("start", "--set", "release=2.0-bad")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert [site.current(n) for n in NAMES] == ["1.1", "1.1", "1.1"]  # h1 rolled back
    assert site.apps["h2"].served["2.0-bad"] == 0 and site.apps["h3"].served["2.0-bad"] == 0
    state = site.status()
    assert state["deploy"]["status"] == "rolled back", state  # type: ignore[index]
    phases = {h["host"]: h["phase"] for h in state["hosts"]}  # type: ignore[attr-defined]
    assert phases["h1"] == "rolled back" and phases["h2"] == phases["h3"] == "pending"
    marker = json.loads((site.root / "hosts/h1/app/.opsagent/deploy.json").read_text())
    assert marker["verified"] == "1.1" and "2.0-bad" in marker["failed"]

    # the failed release is never one to roll back to; keep_releases 2 kept current + verified
    refused = site.deploy("rollback", "--to", "2.0-bad")
    assert refused.returncode == 2 and "failed its checks" in refused.stdout + refused.stderr
    assert site.deploy("start", "--set", "release=1.2").returncode == 0
    assert site.releases("h2") == ["1.1", "1.2"]  # 1.0 pruned, 1.1 was the verified one
    back = site.deploy("rollback", "--to", "1.1")
    assert back.returncode == 0, back.stdout + back.stderr
    assert {site.current(n) for n in NAMES} == {"1.1"}
    audit = opsagent(site.root, "audit", "log", "--state-dir", str(site.root / "state"))
    assert "switch current to 1.2" in audit.stdout and "roll back to 1.1" in audit.stdout
    report = json.loads(opsagent(site.root, "report", "--format", "json", "--state-dir",
                                 str(site.root / "state")).stdout)
    outcomes = [(d["version"], d["status"], d["rolled_back"]) for d in report["deploys"]]
    assert ("2.0-bad", "rolled back", 1) in outcomes and ("1.2", "succeeded", 0) in outcomes
    html = opsagent(site.root, "report", "--format", "html", "--state-dir", str(site.root / "state"))
    assert 'id="deploys-table"' in html.stdout and "2.0-bad" in html.stdout
    text = _metrics(site)
    assert 'opsagent_deploy_status{policy="app",status="rolled_back"} 1.0' in text
    assert 'opsagent_deploy_host_rollbacks_total{policy="app"} 4.0' in text  # h1, then all three
    assert 'opsagent_deploys_total{outcome="succeeded",policy="app"} 4.0' in text


@requires_sshd
def test_ten_failed_deploys_in_a_row_still_roll_back_to_the_last_good_release(site: Site) -> None:
    site.write(ROLLING)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    for n in range(10):
        release(site.root / "dist", f"bad-{n}", 500)
        assert site.deploy("start", "--set", f"release=bad-{n}").returncode == 2
        assert site.current("h1") == "1.0"
    assert {site.current(n) for n in NAMES} == {"1.0"}
    assert site.releases("h1") == ["1.0", "bad-9"]  # keep_releases 2: failed ones pruned first
    assert site.deploy("rollback").returncode == 0 and site.current("h1") == "1.0"


@requires_sshd
def test_abort_is_obeyed_before_the_next_measurement_and_pause_waits_for_resume(site: Site) -> None:
    site.write(ROLLING)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    site.write("{canary: {steps: [{hosts: 1}, {analysis: {interval: 30s, count: 5}}, {hosts: '100%'}]}}")
    proc = _background(site, "start", "--set", "release=1.1")
    _wait_phase(site, "analysis 1 of 5")
    assert site.deploy("pause").returncode == 0
    _wait_phase(site, "paused by")
    assert site.status()["deploy"]["status"] == "paused"  # type: ignore[index]
    assert site.deploy("abort").returncode == 0
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    state = site.status()
    assert state["deploy"]["status"] == "aborted"  # type: ignore[index]
    assert len(state["measurements"]) == 1  # type: ignore[arg-type]  # not one more after abort
    assert {site.current(n) for n in NAMES} == {"1.0"}


class Receiver:
    """Webhook deliveries: (event, body, whether the signature holds)."""

    def __init__(self, secret: str) -> None:
        self.got: list[tuple[str, dict[str, object], bool]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                good = hmac.compare_digest(self.headers["X-Opsagent-Signature"], "sha256=" + hmac.new(
                    secret.encode(), body, hashlib.sha256).hexdigest())
                receiver.got.append((self.headers["X-Opsagent-Event"], json.loads(body), good))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@requires_sshd
def test_events_reach_a_signed_webhook_and_a_dead_one_holds_nothing_up(
        site: Site) -> None:
    receiver = Receiver("s3cret")
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    (site.root / "hook.key").write_text("s3cret\n")
    hooks = (f"webhooks: [{{url: '{receiver.url}', secret: {{file: '{site.root}/hook.key'}}}}, "
             f"{{url: '{dead}', secret: {{file: '{site.root}/hook.key'}}, retries: 1}}]")
    site.write(ROLLING, hooks)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    bad = site.deploy("start", "--set", "release=2.0-bad")
    assert bad.returncode == 2
    assert f"webhook {dead}: rolled-back not delivered after 2 tries" in bad.stdout
    events = [e for e, _, _ in receiver.got]
    assert events[:4] == ["started", "wave-done", "wave-done", "succeeded"]
    assert events[4:] == ["started", "rolled-back"], events
    assert all(good for _, _, good in receiver.got)
    body = receiver.got[-1][1]
    assert body["policy"] == "app" and body["version"] == "2.0-bad" and body["hosts"] == ["h1"]
    assert "s3cret" not in json.dumps(receiver.got) + bad.stdout
    receiver.server.shutdown()


@requires_sshd
def test_promote_from_refuses_a_version_that_did_not_run_healthy_in_staging(site: Site) -> None:
    site.write(ROLLING, "promote_from: {policy: app-staging, healthy_for: 2s}")
    staging = (site.root / "policies" / "app.yml").read_text().replace(
        "name: app}", "name: app-staging}").replace("targets: [app]", "targets: [h1]").replace(
        "/app\"", "/staging\"").replace("promote_from: {policy: app-staging, healthy_for: 2s}", "")
    staging = "\n".join(line for line in staging.splitlines() if "health:" not in line) + "\n"
    (site.root / "policies" / "staging.yml").write_text(staging)
    refused = site.deploy("start", "--set", "release=1.0")
    assert refused.returncode == 1 and "it was for 0s" in refused.stderr, refused.stderr
    assert site.current("h1") is None  # nothing was touched
    ok = opsagent(site.root, "deploy", "start", "app-staging", "policies", "-i", str(site.inventory),
                  "--state-dir", str(site.root / "state"), "--set", "release=1.0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert site.deploy("start", "--set", "release=1.0").returncode == 1  # not for 2 s yet
    time.sleep(2)
    promoted = site.deploy("start", "--set", "release=1.0")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert {site.current(n) for n in NAMES} == {"1.0"}


QUERY = ('sum(rate(http_requests_total{code!~"5..",version="{{ version }}"}[5s])) / '
         'sum(rate(http_requests_total{version="{{ version }}"}[5s]))')


@requires_sshd
@pytest.mark.skipif(not prometheus.available(), reason="prometheus (Debian: prometheus) not installed")
def test_canary_analysis_queries_a_real_prometheus_and_no_data_is_never_success(site: Site) -> None:
    prom = prometheus.Prometheus(site.root / "prom", [f"127.0.0.1:{site.apps[n].port}" for n in NAMES])
    loads = [nginx.Load(f"http://127.0.0.1:{site.apps[n].port}/") for n in NAMES]
    try:
        site.write(ROLLING)
        assert site.deploy("start", "--set", "release=1.0").returncode == 0
        prom.wait_for('http_requests_total{version="1.0"}')
        canary = ("{canary: {steps: [{hosts: 1}, {analysis: {interval: 2s, count: 4, "
                  "inconclusive_limit: 2}}, {hosts: '100%'}]}}")
        site.write(canary, analysis=(
            "  analysis:\n    - name: success-rate\n"
            f"      prometheus: {{address: '{prom.address}', query: '{QUERY}'}}\n"
            "      success: '>= 0.99'\n"))
        good = site.deploy("start", "--set", "release=1.1")
        assert good.returncode == 0, good.stdout + good.stderr
        seen = site.status()["measurements"]
        assert any(m["verdict"] == "passed" and m["value"]["result"] == 1.0 for m in seen), seen  # type: ignore[attr-defined]

        site.write(canary, analysis=(
            "  analysis:\n    - name: success-rate\n"
            f"      prometheus: {{address: '{prom.address}', query: 'sum(nothing_like_this)'}}\n"
            "      success: '>= 0.99'\n"))
        proc = _background(site, "start", "--set", "release=1.2")
        _wait_phase(site, "analysis inconclusive")
        state = site.status()
        assert state["deploy"]["status"] == "paused"  # type: ignore[index]
        assert [m["verdict"] for m in state["measurements"]][:3] == ["inconclusive"] * 3  # type: ignore[attr-defined]
        assert site.deploy("abort").returncode == 0
        assert proc.wait(60) == 2
        assert {site.current(n) for n in NAMES} == {"1.1"}
    finally:
        for load in loads:
            load.stop()
        prom.stop()


def _background(site: Site, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agent", "deploy", args[0], "app", "policies",
                             "-i", str(site.inventory), "--state-dir", str(site.root / "state"),
                             *args[1:]], cwd=site.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_phase(site: Site, text: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc = site.deploy("status", "--json")
        if proc.returncode == 0 and text in json.loads(proc.stdout)["deploy"]["phase"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"the deploy never reached {text!r}: {site.deploy('status').stdout}")


def _metrics(site: Site) -> str:
    """The metrics page the daemon would serve from this store, checked by promtool."""
    from agent.metrics import exposition, registry_for

    db = site.root / "state" / "state.db"
    text = exposition(db, registry_for(db))
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                                 check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    return text.decode()


@requires_sshd
def test_a_canary_whose_analysis_fails_is_rolled_back_and_only_it_served_the_version(
        site: Site) -> None:
    site.write(CANARY)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    (site.root / "hosts").mkdir(exist_ok=True)
    release(site.root / "dist", "1.3", 200)
    # healthy at /up (health passes) but failing requests: only analysis can tell
    flaky = site.root / "dist" / "app-1.3.tar.gz"
    assert flaky.exists()
    site.write(CANARY)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "deploy", "start", "app", "policies",
                             "-i", str(site.inventory), "--state-dir", str(site.root / "state"),
                             "--set", "release=1.3"], cwd=site.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_phase(site, "analysis 1 of 3")  # health passed: only the analysis can tell now
    status_file = site.root / "hosts/h1/app/releases/1.3/status"
    status_file.write_text("500")  # the canary starts failing after its health check
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "analysis failed: errors" in out
    assert [site.current(n) for n in NAMES] == ["1.0", "1.0", "1.0"]
    assert site.apps["h2"].served["1.3"] == 0 and site.apps["h3"].served["1.3"] == 0
    state = site.status()
    assert state["deploy"]["status"] == "rolled back"  # type: ignore[index]
    assert any(m["verdict"] == "failed" for m in state["measurements"])  # type: ignore[attr-defined]


@requires_sshd
def test_a_killed_controller_leaves_the_truth_and_resume_goes_on(site: Site) -> None:
    site.write(ROLLING)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    site.write("{canary: {steps: [{hosts: 1}, {pause: forever}, {hosts: '100%'}]}}")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "deploy", "start", "app", "policies",
                             "-i", str(site.inventory), "--state-dir", str(site.root / "state"),
                             "--set", "release=1.1"], cwd=site.root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc_state = site.deploy("status", "--json")
        if proc_state.returncode == 0 and "pausing" in json.loads(proc_state.stdout)["deploy"]["phase"]:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = site.status()
    assert state["deploy"]["status"] == "progressing" and state["controller"] is None  # type: ignore[index]
    assert [site.current(n) for n in NAMES] == ["1.1", "1.0", "1.0"]
    text = site.deploy("status").stdout
    assert "none running (opsagent deploy resume goes on)" in text
    assert site.deploy("promote").returncode == 0  # asked of the next controller
    resumed = site.deploy("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {site.current(n) for n in NAMES} == {"1.1"}
    assert site.status()["deploy"]["status"] == "succeeded"  # type: ignore[index]


@requires_sshd
@pytest.mark.skipif(not nginx.available(), reason="nginx (Debian: nginx-light) not installed")
def test_hosts_are_drained_from_a_real_nginx_while_replaced_and_no_request_is_lost(
        site: Site) -> None:
    servers = [f"127.0.0.1:{site.apps[n].port}" for n in NAMES]
    lb = nginx.Nginx(site.root / "nginx", "app_up", servers)
    try:
        traffic = (f"traffic: {{nginx: {{host: lb, upstream: app_up, address: '127.0.0.1:{{{{ app_port }}}}',"
                   f" config: '{lb.upstream_file}', pid: '{lb.pid}', nginx: '{lb.command}'}}}}")
        site.write(ROLLING, traffic)
        first = site.deploy("start", "--set", "release=1.0")
        load = nginx.Load(f"http://127.0.0.1:{lb.port}/")
        second = site.deploy("start", "--set", "release=1.1")
        codes = load.stop()
        assert first.returncode == 0 and second.returncode == 0, second.stdout + second.stderr
        assert codes[200] > 50 and set(codes) == {200}, codes  # not one request lost
        assert load.versions["1.1"] > 0
        text = lb.upstream_file.read_text()
        assert "down" not in text and text.count("server 127.0.0.1:") == 3  # all back
        audit = opsagent(site.root, "audit", "log", "--state-dir", str(site.root / "state"))
        assert "nginx upstream app_up (down: h1)" in audit.stdout

        # nginx -t refuses: the file is put back, the host is not replaced, nothing else is
        site.write(ROLLING, traffic.replace(lb.command, f"{lb.command} -g bad;"))
        before = lb.upstream_file.read_text()
        refused = site.deploy("start", "--set", "release=1.2")
        assert refused.returncode == 2 and "nginx -t refused" in refused.stdout, refused.stdout
        assert lb.upstream_file.read_text() == before
        assert {site.current(n) for n in NAMES} == {"1.1"}
    finally:
        lb.stop()


@requires_sshd
@pytest.mark.skipif(not nginx.available(), reason="nginx (Debian: nginx-light) not installed")
def test_a_canary_weight_step_sets_the_new_versions_share_of_requests_in_nginx(site: Site) -> None:
    servers = [f"127.0.0.1:{site.apps[n].port}" for n in NAMES]
    lb = nginx.Nginx(site.root / "nginx", "app_up", servers)
    try:
        traffic = (f"traffic: {{nginx: {{host: lb, upstream: app_up, address: '127.0.0.1:{{{{ app_port }}}}',"
                   f" config: '{lb.upstream_file}', pid: '{lb.pid}', nginx: '{lb.command}'}}}}")
        site.write(ROLLING, traffic)
        assert site.deploy("start", "--set", "release=1.0").returncode == 0
        site.write("{canary: {steps: [{hosts: 1}, {weight: 10}, {pause: 30s}, {hosts: '100%'}]}}",
                   traffic)
        proc = _background(site, "start", "--set", "release=1.1")
        _wait_phase(site, "pausing")
        text = lb.upstream_file.read_text()
        assert text.count("weight=2") == 1 and text.count("weight=9") == 2, text  # 2 / (2+9+9)
        load = nginx.Load(f"http://127.0.0.1:{lb.port}/")
        time.sleep(2)
        load.stop()
        share = load.versions["1.1"] / sum(load.versions.values())
        assert 0.07 <= share <= 0.13, load.versions  # nginx's weighted round robin: 10 %
        assert site.deploy("promote").returncode == 0
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "weight" not in lb.upstream_file.read_text()  # one version again: equal shares
    finally:
        lb.stop()


def _recap(site: Site) -> str:
    history = opsagent(site.root, "history", "--state-dir", str(site.root / "state"))
    return history.stdout.splitlines()[2] if len(history.stdout.splitlines()) > 2 else ""


@requires_sshd
def test_a_baseline_probe_does_not_blame_the_canary_for_a_slowdown_of_every_host(site: Site) -> None:
    site.write(ROLLING)
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    canary = "{canary: {steps: [{hosts: 1}, {analysis: {interval: 1s, count: 2}}, {hosts: '100%'}]}}"
    probe = ("  analysis:\n    - name: latency\n      http_probe: {url: 'http://127.0.0.1:"
             "{{ app_port }}/', requests: 10, baseline: BASELINE}\n      success: 'SUCCESS'\n")
    for app in site.apps.values():
        app.delay = 0.2  # every host is slow now
    site.write(canary, analysis=probe.replace("BASELINE", "false").replace("SUCCESS", "p99 <= 100ms"))
    blamed = site.deploy("start", "--set", "release=1.1")
    assert blamed.returncode == 2 and "analysis failed: latency" in blamed.stdout
    site.write(canary, analysis=probe.replace("BASELINE", "true").replace(
        "SUCCESS", "p99 <= 1.5 * baseline.p99 + 50ms"))
    fair = site.deploy("start", "--set", "release=1.2")
    assert fair.returncode == 0, fair.stdout
    assert {site.current(n) for n in NAMES} == {"1.2"}
    seen = site.status()["measurements"][0]["value"]  # type: ignore[index]
    assert seen["p99"] >= 0.2 and seen["baseline"]["p99"] >= 0.2  # measured side by side
    site.apps["h1"].delay, site.apps["h2"].delay, site.apps["h3"].delay = 0.6, 0.0, 0.0
    release(site.root / "dist", "1.3")
    slow_canary = site.deploy("start", "--set", "release=1.3")
    assert slow_canary.returncode == 2 and "analysis failed: latency" in slow_canary.stdout


def test_bad_input_to_deploy_start_changes_and_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yml").write_text(
        "apiVersion: opsagent/v1\nkind: deploy\nmetadata: {name: web}\ntargets: [all]\nspec:\n"
        "  version: \"{{ release | default('1.0') }}\"\n"
        "  artifact: {src: \"dist/app-{{ release | default('1.0') }}.tar.gz\"}\n"
        f"  path: {tmp_path}/site\n  strategy: {{rolling: {{}}}}\n")

    def deploy(*args: str) -> subprocess.CompletedProcess[str]:
        return opsagent(tmp_path, "deploy", *args, "-i", "@local", "--state-dir",
                        str(tmp_path / "state"))

    missing = deploy("start", "web", "--set", "release=9.9")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "spec.artifact.src dist/app-9.9.tar.gz: No such file or directory" in missing.stderr
    assert not (tmp_path / "site").exists()
    assert deploy("status", "web").returncode == 1  # no deploy was recorded
    bad_set = deploy("start", "web", "--set", "release")
    assert bad_set.returncode == 1 and "expected NAME=VALUE" in bad_set.stderr
    nothing = deploy("resume", "web")
    assert nothing.returncode == 1 and "no deploy to resume" in nothing.stderr
    other = deploy("start", "nope")
    assert other.returncode == 1 and "no policy named 'nope'" in other.stderr
    release(tmp_path / "dist", "1.0")
    done = deploy("start", "web")
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.readlink(tmp_path / "site" / "current") == "releases/1.0"
