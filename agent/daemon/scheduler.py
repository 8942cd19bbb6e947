"""Which runs to start now: every (policy, host) pair has a due time; pairs that are due
are grouped into one run per policy, never while that policy is already running, and
never on a host another run holds (two policies on one host run one after the other).

A pair that stays due while it waits is one run, not one per slot it waited through.
Pure bookkeeping (no processes, no clock of its own), so it is tested without a daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.daemon.policyset import Scheduled
from agent.timing import next_run

Pair = tuple[str, str]  # policy, host


@dataclass
class Scheduler:
    started: float
    policies: dict[str, Scheduled] = field(default_factory=dict)
    due: dict[Pair, float] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)  # policies with a run under way
    busy: set[str] = field(default_factory=set)  # hosts a run holds

    def load(self, policies: tuple[Scheduled, ...], last: dict[Pair, float], now: float) -> None:
        """Take a (new) policy set; pairs kept from the old set keep their due times. A
        policy on `every` whose definition changed (its fingerprint) is due at once, as a
        pulled commit should take effect; `at` and `cron` keep their windows."""
        old_due, old_policies = self.due, self.policies
        self.policies = {p.name: p for p in policies}
        self.due = {}
        for policy in policies:
            before = old_policies.get(policy.name)
            same = before is not None and before.schedule == policy.schedule
            edited = same and before is not None and before.fingerprint != policy.fingerprint
            for host in policy.hosts:
                pair = (policy.name, host)
                kept = old_due.get(pair) if same else None
                if kept is not None and edited and policy.schedule.every:
                    kept = min(kept, now)
                self.due[pair] = kept if kept is not None else next_run(
                    policy.schedule, policy.name, host, last.get(pair), now, self.started)

    def take(self, now: float, slots: int) -> list[tuple[Scheduled, tuple[str, ...]]]:
        """Runs to start now (at most `slots`), marked running; their hosts marked busy."""
        batches: dict[str, list[str]] = {}
        for (name, host), at in sorted(self.due.items(), key=lambda item: item[1]):
            if at > now or name in self.running or host in self.busy:
                continue
            if name not in batches and len(batches) >= slots:
                continue
            if any(host in hosts for hosts in batches.values()):
                continue
            batches.setdefault(name, []).append(host)
        out = []
        for name, hosts in batches.items():
            policy = self.policies[name]
            self.running.add(name)
            self.busy.update(hosts)
            for host in hosts:
                self.due[(name, host)] = next_run(policy.schedule, name, host, now, now, self.started)
            out.append((policy, tuple(hosts)))
        return out

    def trigger(self, policy: str, now: float) -> bool:
        """Make every host of the policy due now (a webhook); one under way runs again
        when it ends. False: no such scheduled policy."""
        if policy not in self.policies:
            return False
        for host in self.policies[policy].hosts:
            self.due[(policy, host)] = min(self.due.get((policy, host), now), now)
        return True

    def clock_stepped(self, step: float, now: float) -> None:
        """The wall clock jumped by `step` seconds (negative: back) while the monotonic
        clock did not. `every` runs keep their distance in real time (their due times
        move with the clock); `at` and `cron` runs follow the new wall clock."""
        self.started += step
        for (name, host), at in self.due.items():
            schedule = self.policies[name].schedule
            self.due[(name, host)] = at + step if schedule.every else \
                next_run(schedule, name, host, None, now, self.started)

    def finished(self, policy: str, hosts: tuple[str, ...]) -> None:
        self.running.discard(policy)
        self.busy.difference_update(hosts)

    def next_due(self) -> float | None:
        waiting = [at for (policy, host), at in self.due.items()
                   if policy not in self.running and host not in self.busy]
        return min(waiting, default=None)
