"""Rollouts: how hosts are cut into waves, the failure budget, and how a plan is staged."""

from __future__ import annotations

import pytest

from agent.core.plans import PolicyRef, RunPlan
from agent.core.rollout import Rollout
from agent.waves import stages

HOSTS = [f"h{i}" for i in range(1, 11)]


@pytest.mark.parametrize("batch, sizes", [
    ([1], [1] * 10),
    ([1, "30%", "100%"], [1, 3, 6]),
    ([2, "50%"], [2, 5, 3]),
    (["1%"], [1] * 10),  # a percentage rounds up, to at least one host
    ([20], [10]),
])
def test_waves(batch: list[int | str], sizes: list[int]) -> None:
    waves = Rollout(batch=batch).waves(HOSTS)
    assert [len(w) for w in waves] == sizes
    assert [h for w in waves for h in w] == HOSTS  # every host once, in order


@pytest.mark.parametrize("percentage, failed, over", [
    (0, 0, False), (0, 1, True), (10, 1, False), (10, 2, True), (50, 5, False), (50, 6, True),
])
def test_the_budget_is_over_the_whole_rollout(percentage: float, failed: int, over: bool) -> None:
    assert Rollout(max_fail_percentage=percentage).over_budget(failed, len(HOSTS)) is over


def test_consecutive_policies_without_a_rollout_share_a_stage() -> None:
    waved = Rollout(batch=[1])
    refs = (PolicyRef("a", "tasks", "enforce"), PolicyRef("b", "tasks", "enforce"),
            PolicyRef("c", "tasks", "enforce", waved), PolicyRef("d", "tasks", "enforce"))
    found = [([p.name for p in s.policies], s.rollout) for s in stages(RunPlan((), refs))]
    assert found == [(["a", "b"], None), (["c"], waved), (["d"], None)]
