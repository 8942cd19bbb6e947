"""A deploy's controller: the run service's waves (agent/waves.py) with this module as
their gate.

Before a wave its hosts are drained from nginx; each wave's release steps and health
checks are runs of their own (locked, recorded, audited as they happen); after it, the
healthy hosts go back into traffic and the failed ones are rolled back; then the
strategy's analysis and pauses are done, obeying a person's requests (pause, resume,
promote, abort) within one analysis interval. Every step is written to the store
before the next, so after a SIGKILL `deploy status` tells the truth and `deploy resume`
goes on from the last wave done. Rollback puts exactly the hosts this deploy changed
back on their verified release (a failed release never is one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent import health as health_checks
from agent.core.hosts import Host
from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.core.results import RunResult, Status
from agent.deploys import analysis, traffic
from agent.deploys.events import Events
from agent.deploys.strategy import After, waves
from agent.kinds.deploy import plan as steps
from agent.kinds.deploy.observe import state
from agent.kinds.deploy.spec import FOREVER, Analysis, DeploySpec, Nginx
from agent.state import deploys
from agent.state.store import Store
from agent.waves import FAIL, GO, HOLD, Waves

CHANGED = ("updating", "healthy", "failed")  # phases of a host this deploy touched


@dataclass
class Controller:
    store: Store
    plan: RunPlan  # the deploy policy's hosts (in deploy order) with their specs
    ref: PolicyRef
    lb: Host | None  # the nginx host, when the policy has traffic
    deploy: deploys.Deploy
    say: Callable[[str], None]
    interrupted: Callable[[], bool]
    connect_timeout: int = 10
    down: set[str] = field(default_factory=set)
    outcome: str = ""  # what the deploy ended as, once it did
    full: bool = False  # promoted --full: no more gates
    weight: int | None = None  # the new version's share of requests, when a step set one
    gates: list[list[After]] = field(default_factory=list)  # what follows each wave
    events: Events | None = None
    asked_by: str = ""  # the person's request the controller now carries out, for the audit log

    def event(self, name: str, **data: Any) -> None:
        if self.events is not None:
            self.events.send(name, **data)

    # ---- what the deploy is made of

    @property
    def names(self) -> list[str]:
        return [hp.host.name for hp in self.plan.hosts]

    def spec(self, host: str | None = None) -> DeploySpec:
        host_plan = next((hp for hp in self.plan.hosts if hp.host.name == host), self.plan.hosts[0])
        found = next(s for r, s in host_plan.specs if r.name == self.ref.name)
        assert isinstance(found, DeploySpec)
        return found

    def _host_plan(self, name: str, planned: list[Any]) -> HostPlan:
        host_plan = next(hp for hp in self.plan.hosts if hp.host.name == name)
        check = self.spec(name).health
        return HostPlan(host_plan.host, tuple(PlannedStep(self.ref, s) for s in planned),
                        host_plan.specs, ((self.ref.name, check),) if check else ())

    def _run(self, plan: RunPlan, what: str) -> RunResult:
        """A run of its own: the hosts locked, the result recorded and audited now."""
        from agent.runs import run

        plan = RunPlan(tuple(hp for hp in plan.hosts if hp.steps), plan.policies, plan.source)
        if not plan.hosts:
            return RunResult([], False)
        finished = run(plan, self.store, f"deploy {self.ref.name} {what}", check=False,
                       connect_timeout=self.connect_timeout, stop=self.interrupted,
                       asked_by=self.asked_by)
        if finished.error:
            self.say(f"could not record: {finished.error}")
        return finished.result

    def _set(self, **fields: Any) -> None:
        deploys.update(self.store, self.deploy.id, **fields)

    # ---- the deploy

    def run(self) -> str:
        """Deploy (or go on with a resumed deploy); returns the outcome."""
        spec = self.spec()
        rollout, after = waves(spec, len(self.names), spec.health)
        self.gates = after
        done = {h.host for h in deploys.hosts(self.store, self.deploy.id)
                if h.phase == "healthy" and h.version == self.deploy.version}
        plans = tuple(self._host_plan(n, [] if n in done else self._release(n))
                      for n in self.names)
        plan = RunPlan(plans, (replace(self.ref, rollout=rollout),), self.plan.source)
        self.down = set()
        self._set(status="progressing", phase=f"wave {self.deploy.wave + 1}")
        Waves(plan, False, False, self.connect_timeout, None, self.say, self._stopping, gate=self,
              first=self.deploy.wave + 1, runner=lambda p: self._run(p, self.deploy.version)
              ).execute()
        if self.outcome:
            return self.outcome
        if self._request() == "abort":
            return self.abort("aborted")
        if self.interrupted():
            self._set(phase="controller stopped: opsagent deploy resume goes on")
            return "interrupted"
        return self._settle()

    def _release(self, name: str) -> list[Any]:
        """What one host runs to get the new version."""
        return steps.release(self.spec(name), self._info(name))

    def _settle(self) -> str:
        hosts = [n for n in self.names if n not in self._phases("failed", "rolled back",
                                                                  "rollback failed")]
        result = self._run(RunPlan(tuple(self._host_plan(n, steps.settle(self.spec(n), self._info(n)))
                                         for n in hosts), (self.ref,), self.plan.source), "verify")
        bad = [h.host for h in result.hosts if h.failed]
        deploys.set_hosts(self.store, self.deploy.id, [n for n in hosts if n not in bad],
                          "verified", self.deploy.version)
        left_behind = self._phases("failed", "rolled back", "rollback failed")
        outcome = "succeeded" if not bad and not left_behind else "failed"
        self._set(status=outcome, phase=f"{self.deploy.version} on {len(hosts) - len(bad)} of "
                  f"{len(self.names)} hosts", finished=time.time(),
                  error=f"could not mark verified on {', '.join(bad)}" if bad else "")
        self.say(f"deploy {self.ref.name} {self.deploy.version}: {outcome}")
        self.event(outcome, hosts=[n for n in hosts if n not in bad])
        return outcome

    def _info(self, name: str) -> Any:
        return next(hp.host.info for hp in self.plan.hosts if hp.host.name == name)

    def _phases(self, *phases: str) -> list[str]:
        return [h.host for h in deploys.hosts(self.store, self.deploy.id) if h.phase in phases]

    # ---- the gate (agent.waves.Gate)

    def before(self, number: int, hosts: list[str]) -> str:
        deploys.set_hosts(self.store, self.deploy.id, hosts, "draining")
        self._set(phase=f"wave {number} of {self.deploy.waves}: draining {', '.join(hosts)}")
        if not self._traffic(down=hosts):
            deploys.set_hosts(self.store, self.deploy.id, hosts, "pending")
            return f"could not drain {', '.join(hosts)} from nginx: not replaced"
        deploys.set_hosts(self.store, self.deploy.id, hosts, "updating")
        self._set(phase=f"wave {number} of {self.deploy.waves}: updating {', '.join(hosts)}")
        return ""

    def after(self, number: int, healthy: list[str], failed: list[str]) -> None:
        deploys.set_hosts(self.store, self.deploy.id, healthy, "healthy", self.deploy.version)
        weights = [step.weight for step in self.gates[number - 1] if step.weight]
        if weights:
            self.weight = weights[-1]  # before they take requests: never the equal share
        if failed:
            deploys.set_hosts(self.store, self.deploy.id, failed, "failed",
                              detail="its release steps or health check failed")
            if self.spec().on_failure == "rollback":
                self.rollback(failed)
        self._traffic(up=healthy)

    def judge(self, number: int, left: int) -> tuple[str, str]:
        for step in [] if self.full else self.gates[number - 1]:
            if step.weight:
                continue  # set as the wave's hosts went back into traffic
            verdict, why = self._analyse(number, step.analysis) if step.analysis else self._pause(
                number, step)
            if verdict != GO:
                return verdict, why
        verdict, why = self._hold(number, "")
        if verdict == GO:
            self._set(wave=number)
            self.event("wave-done", wave=number, waves=self.deploy.waves,
                       hosts=self._phases("healthy"))
        return verdict, why

    def failed(self, number: int, why: str) -> None:
        if self._request() == "abort" or self.spec().on_failure == "rollback":
            self.abort("aborted" if self._request() == "abort" else "rolled back", why)
            return
        self._set(status="paused", phase=f"failed, needs a person: {why} (opsagent deploy "
                  "resume | rollback)", error=why)
        self.event("paused", why=why)
        self.outcome = "paused"

    # ---- person's requests, pauses and analysis

    def _request(self) -> str:
        found = deploys.get(self.store, self.deploy.id)
        return found.request if found else ""

    def _stopping(self) -> bool:
        return self.interrupted() or self._request() == "abort"

    def _hold(self, number: int, phase: str) -> tuple[str, str]:
        """Wait while the deploy is paused by a person; the verdict once it is not."""
        shown = ""
        while True:
            request = self._request()
            if self.interrupted():
                return HOLD, "the controller was stopped"
            if request == "abort":
                return FAIL, f"aborted by {self._requested_by()}"
            if request != "pause":
                if request in ("resume", "promote", "promote-full"):
                    by = self._requested_by()
                    self.full = self.full or request == "promote-full"
                    self.asked_by = f"{request.replace('-full', ' --full')} asked by {by}"
                    self._set(request="", status="progressing")
                    if request != "resume":
                        self.event("promoted", wave=number, full=request == "promote-full", by=by)
                return GO, ""
            said = (f"paused by {self._requested_by()} after wave {number}{phase}: opsagent "
                    "deploy resume | promote | abort")
            if said != shown:
                self._set(status="paused", phase=said)
                if not shown:
                    self.event("paused", why=said)
                shown = said
            time.sleep(0.2)

    def _requested_by(self) -> str:
        found = deploys.get(self.store, self.deploy.id)
        return found.requested_by if found else "?"

    def _pause(self, number: int, step: After) -> tuple[str, str]:
        seconds = step.pause or 0
        what = "until promoted" if seconds == FOREVER else f"{seconds}s"
        self._set(phase=f"wave {number}: pausing {what}")
        self.say(f"pausing {what} (opsagent deploy promote {self.ref.name} skips it)")
        deadline = time.monotonic() + (seconds if seconds != FOREVER else float("inf"))
        while time.monotonic() < deadline:
            request = self._request()
            if request in ("promote", "promote-full"):
                return self._hold(number, "")
            if request or self.interrupted():
                verdict, why = self._hold(number, "")
                if verdict != GO:
                    return verdict, why
            time.sleep(0.2)
        return GO, ""

    def _analyse(self, number: int, how: Analysis) -> tuple[str, str]:
        new = self._phases("healthy")
        stable = [n for n in self.names if n not in new and n not in self._phases(
            "failed", "rollback failed", "updating", "draining")]
        metrics = {m.name: [next(x for x in self.spec(h).analysis if x.name == m.name) for h in new]
                   for m in self.spec().analysis}
        baseline = {m.name: [next(x for x in self.spec(h).analysis if x.name == m.name)
                             for h in stable] for m in self.spec().analysis}
        failed = {name: 0 for name in metrics}
        unsure = dict(failed)
        for count in range(1, how.count + 1):
            self._set(phase=f"wave {number}: analysis {count} of {how.count} on {', '.join(new)}")
            for name, versions in metrics.items():
                verdict, values = analysis.measure(versions, self._stopping, baseline[name])
                deploys.measured(self.store, self.deploy.id, number, name, verdict, values)
                self.say(f"analysis {count}/{how.count} {name}: {verdict} {_shown(values)}")
                failed[name] += verdict == analysis.FAILED
                unsure[name] += verdict == analysis.INCONCLUSIVE
                if failed[name] > how.failure_limit:
                    why = (f"analysis failed: {name} failed {failed[name]} of {count} "
                           f"measurements ({_shown(values)})")
                    self.event("analysis-failed", wave=number, metric=name, values=values, why=why)
                    return FAIL, why
                if unsure[name] > how.inconclusive_limit:
                    self.say(f"analysis inconclusive: {name} had no data {unsure[name]} times")
                    deploys.ask(self.store, self.deploy.id, "pause")
                    return self._hold(number, f" (analysis inconclusive: {name} had no data)")
            if count < how.count:
                verdict, why = self._sleep(number, how.interval)
                if verdict != GO or self.full:
                    return verdict, why
        return GO, ""

    def _sleep(self, number: int, seconds: float) -> tuple[str, str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            request = self._request()
            if request in ("promote", "promote-full", "abort", "pause") or self.interrupted():
                return self._hold(number, "")
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return GO, ""

    # ---- traffic and rollback

    def _traffic(self, down: list[str] = (), up: list[str] = ()) -> bool:  # type: ignore[assignment]
        spec = self.spec()
        if spec.traffic is None or self.lb is None:
            return True
        self.down = (self.down | set(down)) - set(up)
        servers = self._servers()
        sequence = traffic.set_upstream(spec.traffic.nginx, self.ref.name, servers)
        result = self._run(RunPlan((HostPlan(self.lb, (PlannedStep(self.ref, sequence),)),),
                                   (self.ref,), self.plan.source), "traffic")
        bad = [op.error or op.stderr for h in result.hosts for op in h.ops if op.status is Status.FAILED]
        if bad or any(h.unreachable for h in result.hosts):
            self.say(f"traffic: {'; '.join(bad) or 'nginx host unreachable'}")
            return False
        return True

    def _servers(self) -> dict[str, tuple[str, str]]:
        """The upstream as it should be now: host -> (address, '', 'down' or 'weight=N')."""
        new = set(self._phases("healthy"))
        serving = [n for n in self.names if n not in self.down]
        weights = traffic.weights(self.weight, [n for n in serving if n in new],
                                  [n for n in serving if n not in new])
        return {n: (traffic.address(self._nginx(n), n),
                    "down" if n in self.down else weights.get(n, "")) for n in self.names}

    def _nginx(self, host: str) -> Nginx:
        found = self.spec(host).traffic
        assert found is not None
        return found.nginx

    def rollback(self, hosts: list[str], to: str | None = None, failed: str | None = None) -> list[str]:
        """Put these hosts back on their verified release (or `to`), drained while they
        switch; returns those that could not be."""
        if not hosts:
            return []
        failed = failed if failed is not None else self.deploy.version
        self._set(phase=f"rolling back {', '.join(hosts)}")
        self._traffic(down=hosts)
        plans = tuple(self._host_plan(n, steps.rollback(self.spec(n), self._info(n), to, failed))
                      for n in hosts)
        result = self._run(RunPlan(plans, (self.ref,), self.plan.source), "rollback")
        ok = [h.host for h in result.hosts if not h.failed]
        checked = self._health(ok)
        bad = [n for n in hosts if n not in checked]
        for host in result.hosts:
            seen = state(host.ops) or {}
            if host.host in checked:
                deploys.set_hosts(self.store, self.deploy.id, [host.host], "rolled back",
                                  str(seen.get("current") or ""))
        for host in result.hosts:
            if host.host in bad:
                why = "; ".join(_why(op.error, op.stderr) for op in host.ops
                                if op.status is Status.FAILED) or host.error or "health check failed"
                deploys.set_hosts(self.store, self.deploy.id, [host.host], "rollback failed",
                                  detail=why[:500])
                self.say(f"{host.host}: could not roll back: {why}")
        self._traffic(up=checked)
        self.say(f"rolled back {', '.join(checked) or 'no host'}"
                 + (f"; could not roll back {', '.join(bad)}" if bad else ""))
        return bad

    def _health(self, hosts: list[str]) -> list[str]:
        """The hosts that pass the policy's health check (all, without one)."""
        spec = self.spec()
        if spec.health is None or not hosts:
            return hosts
        ref = self.ref
        plans = [self._host_plan(n, []) for n in hosts]
        result = self._run(health_checks.command_plan(plans, ref, self.plan.source), "health")
        bad = {h.host for h in result.hosts if h.failed}
        for host_plan in plans:
            check = host_plan.health_of(ref.name)
            probed = health_checks.probe(ref, check, self.interrupted) if check else None
            if probed is not None and probed.status is Status.FAILED:
                bad.add(host_plan.host.name)
        return [n for n in hosts if n not in bad]

    def abort(self, outcome: str, why: str = "") -> str:
        if self._request() == "abort":
            self.asked_by = f"abort asked by {self._requested_by()}"
        changed = self._phases(*CHANGED)
        self.say(f"{outcome}: rolling back {', '.join(changed) or 'nothing'}"
                 + (f" ({why})" if why else ""))
        self.rollback(changed)
        bad = self._phases("rollback failed")  # in this rollback or an earlier one of the deploy
        self._set(status=outcome if not bad else "failed", finished=time.time(), request="",
                  phase=(f"{outcome}: every changed host is back on its verified release" if not bad
                         else f"{outcome}; could not roll back {', '.join(bad)}"),
                  error=why or (f"could not roll back {', '.join(bad)}" if bad else ""))
        self.outcome = outcome if not bad else "failed"
        self.event("rolled-back" if outcome == "rolled back" else outcome, why=why,
                   hosts=self._phases("rolled back"), failed_to_roll_back=bad)
        return self.outcome


def _why(error: str, stderr: str) -> str:
    """A failed command's reason: its own words on stderr, else the engine's."""
    said = [line for line in stderr.strip().splitlines() if line.strip()]
    return said[-1] if said else error


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())
