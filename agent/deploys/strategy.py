"""A deploy's strategy as the run service's waves: the hosts per wave (a Rollout), and
what the gate does after each wave (analysis, pause), in order."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.core.rollout import Health, Rollout
from agent.kinds.deploy.spec import Analysis, DeploySpec


@dataclass(frozen=True)
class After:
    """One thing done after a wave: an analysis, a pause (seconds; FOREVER: until
    promoted), or a weight (the new version's share of requests, set as the wave's hosts
    go back into traffic)."""

    analysis: Analysis | None = None
    pause: int | None = None
    weight: int | None = None


def _count(size: int | str, total: int) -> int:
    if isinstance(size, int):
        return size
    return max(1, math.ceil(total * int(size[:-1]) / 100))


def waves(spec: DeploySpec, total: int, health: Health | None) -> tuple[Rollout, list[list[After]]]:
    """The rollout for `total` hosts, and what follows each of its waves."""
    if spec.strategy.rolling is not None:
        rolling = spec.strategy.rolling
        cap = rolling.max_unavailable or total
        batch = tuple(min(_count(size, total), cap) for size in rolling.batch)
        rollout = Rollout(batch=batch, max_fail_percentage=rolling.max_fail_percentage,
                          health=health)
        count = len(rollout.waves([str(i) for i in range(total)]))
        return rollout, [([After(analysis=rolling.analysis)] if rolling.analysis else [])
                         + ([After(pause=rolling.pause)] if rolling.pause and i < count - 1 else [])
                         for i in range(count)]
    if spec.strategy.blue_green is not None:  # one wave: every host's idle slot, then the switch
        blue_green = spec.strategy.blue_green
        return (Rollout(batch=("100%",), health=health),
                [[After(analysis=blue_green.analysis)] if blue_green.analysis else []])
    assert spec.strategy.canary is not None
    canary = spec.strategy.canary
    sizes: list[int] = []
    after: list[list[After]] = []
    reached = 0
    for step in canary.steps:
        if step.hosts is not None:
            target = min(total, _count(step.hosts, total))
            if target > reached:
                sizes.append(target - reached)
                after.append([])
                reached = target
        elif after:  # a step before the first hosts step has no canary to judge
            after[-1].append(After(analysis=step.analysis, pause=step.pause, weight=step.weight))
    if reached < total:
        sizes.append(total - reached)
        after.append([])
    sizes.append(1)  # never used: every host is in a wave by now
    return Rollout(batch=tuple(sizes), max_fail_percentage=canary.max_fail_percentage,
                   health=health), after
