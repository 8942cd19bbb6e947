"""Pull mode at fleet scale: ten fleet hosts each run `opsagent daemon` pulling policies
over SSH from a git server on an eleventh (tests/fleet/pull.py), and a real Prometheus
scrapes all ten. A commit reaches every host in one pull and one run (the policy runs
every 5 minutes: only a changed policy running at once gets there within the test), the
shipped dashboard's queries tell the fleet's state, and a broken commit is refused on
every host while the last good one keeps running. Times are measured by bench/pull.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fixtures import SLOT, require
from tests.fleet.host import alive
from tests.fleet.pull import POLICY, PORT, PullFleet
from tests.fleet.reaper import owned
from tests.support.prometheus import RULES, Prometheus, available, panel

pytestmark = [pytest.mark.slow, pytest.mark.fleet,
              pytest.mark.skipif(not available(), reason="prometheus (Debian: prometheus) not installed")]
HOSTS = 10


@pytest.fixture(scope="module")
def pull_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PullFleet]:
    require()
    with owned(SLOT + 10) as fleet:  # a fleet of its own, beside the session's
        made = PullFleet(fleet, tmp_path_factory.mktemp("pull-fleet"), interval="3s")
        made.up(HOSTS)
        yield made


@pytest.fixture
def prometheus(pull_fleet: PullFleet, tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path, [f"{h.address}:{PORT}" for h in pull_fleet.agents],
                      job="opsagent", rules=RULES)
    try:
        prom.wait_for(f'count(up{{job="opsagent"}} == 1) == {HOSTS}', timeout=120)
        yield prom
    finally:
        prom.stop()


def test_a_commit_reaches_every_host_and_a_broken_one_is_refused_on_every_host(
        pull_fleet: PullFleet, prometheus: Prometheus) -> None:
    pf, prom = pull_fleet, prometheus
    pf.wait_release("v1", timeout=180)
    prom.wait_for(f'count(opsagent_policy_compliant{{policy="app"}} == 1) == {HOSTS}')
    (fleet,) = prom.query(panel("Fleet compliance"))
    assert fleet["value"][1] == "1"

    second = pf.commit("v2", "release v2")
    pf.wait_release("v2", timeout=90)  # the policy's own schedule is 5 minutes away
    commits = panel("Hosts per policy commit (pull mode)")
    prom.wait_for(f"({commits}) == {HOSTS}")
    assert [(r["metric"]["commit"], r["value"][1]) for r in prom.query(commits)] == [(second, "10")]
    assert prom.query(panel("Rejected policy reloads"))[0]["value"][1] == "0"

    broken = pf.commit("", "a typo", (POLICY % {"release": "v3"}).replace("every", "evry"))
    prom.wait_for(f"({panel('Rejected policy reloads')}) == {HOSTS}", timeout=90)
    for h in pf.agents:
        problems = [e["message"] for e in pf.events(h) if e.get("event") == "reload_problem"]
        assert problems == [f"reload (pulled {broken[:12]}): policies/app.yml:5:12: tasks 'app' "
                            "> schedule.evry: unknown field 'evry'; did you mean 'every'?"], h.name
        assert pf.release(h) == "v2"  # the last good commit keeps running
        assert f'opsagent_pull_commit_info{{commit="{second}"}} 1.0' in pf.metrics(h)
        assert all(alive(pid) for pid in pf.daemon_pids(h).values()), h.name
    assert [(r["metric"]["commit"], r["value"][1]) for r in prom.query(commits)] == [(second, "10")]

    pf.commit("v3", "the typo fixed")
    pf.wait_release("v3", timeout=90)
    prom.wait_for(f"({panel('Rejected policy reloads')}) == 0", timeout=60)
    (fleet,) = prom.query(panel("Fleet compliance"))
    assert fleet["value"][1] == "1"
