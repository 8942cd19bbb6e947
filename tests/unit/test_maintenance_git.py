"""The git housekeeping's choice of tasks: only thresholds crossed, and a pass that could
do no more (loose objects too young to prune) is not repeated at every run."""

from __future__ import annotations

from typing import Any

from agent.kinds.maintenance.host_git import needed

LIMITS = {"loose_objects": 6700, "packs": 50, "loose_refs": 100}


def state(**changes: Any) -> dict[str, Any]:
    return {"loose_objects": 10, "packs": 3, "loose_refs": 5, "commit_graph": "fresh", **changes}


def tasks(seen: dict[str, Any], settled: dict[str, Any] | None = None) -> list[str]:
    return [task for task, _ in needed(seen, LIMITS, settled)]


def test_a_tidy_repository_needs_nothing() -> None:
    assert tasks(state()) == []
    assert tasks(state(loose_objects=6700, packs=50, loose_refs=100)) == []  # at, not over


def test_each_threshold_brings_its_own_tasks_in_gits_order() -> None:
    assert tasks(state(loose_objects=6701)) == ["prune", "repack", "commit-graph"]
    assert tasks(state(packs=51)) == ["repack", "commit-graph"]
    assert tasks(state(loose_refs=101)) == ["pack-refs"]
    assert tasks(state(commit_graph="stale")) == ["commit-graph"]
    assert tasks(state(commit_graph="none")) == ["commit-graph"]
    assert tasks(state(commit_graph="none", packs=0)) == []  # nothing packed to cover yet
    assert tasks(state(loose_objects=9000, packs=60, loose_refs=500, commit_graph="stale")) == [
        "prune", "repack", "pack-refs", "commit-graph"]


def test_what_the_last_pass_left_is_not_a_reason_to_run_again() -> None:
    young = {"loose_objects": 8000, "packs": 1}
    assert tasks(state(loose_objects=8000), young) == []
    assert tasks(state(loose_objects=8001), young) == ["prune", "repack", "commit-graph"]
    assert tasks(state(loose_objects=7000), {"loose_objects": 0, "packs": 1}) == [
        "prune", "repack", "commit-graph"]
