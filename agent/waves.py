"""Executing a plan in stages: policies without a rollout together on every host at once
(one engine call, as before waves existed), a policy with a rollout in its own waves.

A wave is converged, then each of its hosts that succeeded is health-checked; failures
are counted over the whole rollout, and once they pass max_fail_percentage the waves
left are not started (their hosts' steps of that policy are skipped, saying why). Other
policies still run. A stop (SIGTERM, Ctrl-C) is honoured between waves, during the pause
and, through the engine, within a wave.

A Gate extends a rollout for work that has phases across hosts (a deploy): it is told
before a wave starts (to drain its hosts), after its health checks (to put the healthy
ones back, and undo the failed ones), asked after each wave whether to go on (analysis,
pauses, a person's abort) and told when the rollout failed (to roll back every host it
changed). With `first`, the waves before it are taken as done (a resumed deploy); with
`runner`, each wave and health check is run (and recorded) by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent import health
from agent.core.plans import HostPlan, PolicyRef, RunPlan
from agent.core.results import HostResult, OpResult, RunResult, Status
from agent.core.rollout import Rollout
from agent.engine.run import STOPPED, execute, skipped

OnResult = Callable[[str, OpResult], None]
OnWave = Callable[[str], None]  # a line saying what the rollout does next
Runner = Callable[[RunPlan], RunResult]

GO, FAIL, HOLD = "go", "fail", "hold"  # a gate's verdicts: next wave; failed; stop here


class Gate(Protocol):
    def before(self, number: int, hosts: list[str]) -> str: ...  # why it cannot start; "": go

    def after(self, number: int, healthy: list[str], failed: list[str]) -> None: ...

    def judge(self, number: int, left: int) -> tuple[str, str]: ...  # verdict and why

    def failed(self, number: int, why: str) -> None: ...


@dataclass(frozen=True)
class Stage:
    policies: tuple[PolicyRef, ...]
    rollout: Rollout | None = None


def stages(plan: RunPlan) -> list[Stage]:
    """Consecutive policies without a rollout share a stage; one with a rollout has its own."""
    out: list[Stage] = []
    for ref in plan.policies:
        if ref.rollout is not None:
            out.append(Stage((ref,), ref.rollout))
        elif out and out[-1].rollout is None:
            out[-1] = Stage((*out[-1].policies, ref))
        else:
            out.append(Stage((ref,)))
    return out


@dataclass
class Waves:
    plan: RunPlan
    check: bool
    diff: bool
    connect_timeout: int
    on_result: OnResult | None
    on_wave: OnWave | None
    stop: Callable[[], bool]
    gate: Gate | None = None
    first: int = 1  # waves before this one are done already
    runner: Runner | None = None

    def execute(self) -> RunResult:
        started = time.monotonic()
        merged = {hp.host.name: HostResult(hp.host.name) for hp in self.plan.hosts}
        all_stages = stages(self.plan)
        if len(all_stages) == 1 and all_stages[0].rollout is None:  # no rollout: one call
            return self._run(self.plan)
        for stage in all_stages:
            if stage.rollout is None:
                self._merge(merged, self._run(_part(self.plan, stage.policies)))
            else:
                self._rollout(stage.policies[0], stage.rollout, merged)
        return RunResult([merged[hp.host.name] for hp in self.plan.hosts], self.check,
                         time.monotonic() - started)

    def _run(self, plan: RunPlan) -> RunResult:
        if not plan.hosts:
            return RunResult([], self.check)
        if self.runner is not None:
            return self.runner(plan)
        return execute(plan, check=self.check, diff=self.diff,
                       connect_timeout=self.connect_timeout, on_result=self.on_result,
                       stop=self.stop)

    def _rollout(self, ref: PolicyRef, rollout: Rollout, merged: dict[str, HostResult]) -> None:
        part = _part(self.plan, (ref,))
        names = [hp.host.name for hp in part.hosts]
        waves = rollout.waves(names)
        for number, wave in enumerate(waves, 1):
            for name in wave:
                merged[name].waves[ref.name] = number
        failed: set[str] = set()
        gate = self.gate
        for number, wave in enumerate(waves, 1):
            if number < self.first:
                continue
            if self.stop():
                self._skip(part, ref, [n for w in waves[number - 1:] for n in w], merged, "",
                           stopped=True)
                return
            self._say(f"{ref.label}: wave {number} of {len(waves)}: {', '.join(wave)}")
            if gate is not None:
                why = gate.before(number, wave)
                if why:
                    self._say(f"{ref.label}: {why}")
                    self._skip(part, ref, [n for w in waves[number - 1:] for n in w], merged, why)
                    gate.failed(number, why)
                    return
            hosts = [hp for hp in part.hosts if hp.host.name in wave]
            plan = RunPlan(tuple(hosts), (ref,), self.plan.source)
            self._merge(merged, self._run(plan))
            if not self.check:
                self._check_health(ref, [hp for hp in hosts if not _failed(merged[hp.host.name], ref.name)],
                                   merged)
            now = [name for name in wave if _failed(merged[name], ref.name)]
            failed |= set(now)
            if gate is not None:
                gate.after(number, [n for n in wave if n not in now], now)
            left = [n for w in waves[number:] for n in w]
            # the budget is the whole rollout's: with a gate, even after the last wave
            if (left or gate is not None) and rollout.over_budget(len(failed), len(names)):
                why = (f"rollout stopped after wave {number}: {len(failed)} of {len(names)} "
                       f"hosts failed ({', '.join(sorted(failed))}), more than "
                       f"max_fail_percentage {rollout.max_fail_percentage:g}%")
                self._say(f"{ref.label}: {why}" + (f"; not started on {', '.join(left)}"
                                                   if left else ""))
                self._skip(part, ref, left, merged, why)
                if gate is not None:
                    gate.failed(number, why)
                return
            if gate is not None:
                verdict, why = gate.judge(number, len(left))
                if verdict != GO:
                    self._say(f"{ref.label}: {why}")
                    self._skip(part, ref, left, merged, why)
                    if verdict == FAIL:
                        gate.failed(number, why)
                    return
            if left and rollout.pause and not self.check:
                self._pause(float(rollout.pause))

    def _check_health(self, ref: PolicyRef, hosts: list[HostPlan],
                      merged: dict[str, HostResult]) -> None:
        """Each host's health command (a host that cannot be reached tried again until
        its check's `reconnect` time is up), then its HTTP probe."""
        started = time.monotonic()
        pending = hosts
        while pending:
            done = self._run(health.command_plan(pending, ref, self.plan.source))
            again = []
            waits = []
            for host_plan in pending:
                tried = next((h for h in done.hosts if h.host == host_plan.host.name), None)
                check = host_plan.health_of(ref.name)
                if tried is None or check is None:
                    continue
                if health.lost(tried) and time.monotonic() - started < check.reconnect \
                        and not self.stop():
                    again.append(host_plan)
                    waits.append(float(check.delay or 1))
                else:
                    self._merge(merged, RunResult([tried], self.check))
            if again:
                self._say(f"{ref.label}: health check: {', '.join(h.host.name for h in again)} "
                          "cannot be reached yet; trying again")
                self._wait(min(waits))
            pending = again
        for host_plan in hosts:
            check = host_plan.health_of(ref.name)
            result = health.probe(ref, check, self.stop) if check is not None else None
            if result is not None:
                merged[host_plan.host.name].ops.append(result)
                if self.on_result is not None:
                    self.on_result(host_plan.host.name, result)

    def _skip(self, part: RunPlan, ref: PolicyRef, names: list[str],
              merged: dict[str, HostResult], why: str, stopped: bool = False) -> None:
        for host_plan in part.hosts:
            if host_plan.host.name not in names:
                continue
            result = merged[host_plan.host.name]
            if stopped and not result.error:
                result.error = STOPPED
            for planned in host_plan.steps:
                for op in skipped(planned, self.check):
                    op.error = why
                    result.ops.append(op)
                    if self.on_result is not None:
                        self.on_result(result.host, op)

    def _pause(self, seconds: float) -> None:
        self._say(f"pausing {seconds:g}s before the next wave")
        self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        """Sleep up to seconds, ending early on a stop."""
        deadline = time.monotonic() + seconds
        while not self.stop() and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _say(self, line: str) -> None:
        if self.on_wave is not None:
            self.on_wave(line)

    @staticmethod
    def _merge(merged: dict[str, HostResult], result: RunResult) -> None:
        for host in result.hosts:
            into = merged[host.host]
            into.ops.extend(host.ops)
            into.unreachable = into.unreachable or host.unreachable
            into.error = into.error or host.error


def _part(plan: RunPlan, policies: tuple[PolicyRef, ...]) -> RunPlan:
    """The plan limited to these policies' steps (hosts with none left out)."""
    names = {p.name for p in policies}
    hosts = []
    for host_plan in plan.hosts:
        steps = tuple(s for s in host_plan.steps if s.policy.name in names)
        if steps:
            hosts.append(HostPlan(host_plan.host, steps, host_plan.specs, host_plan.health))
    return RunPlan(tuple(hosts), policies, plan.source)


def _failed(host: HostResult, policy: str) -> bool:
    return host.unreachable or any(op.policy == policy and op.status is Status.FAILED
                                   for op in host.ops)
