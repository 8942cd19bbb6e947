"""The sync kind's metric families, from the facts its runs observed. Labels: policy, host,
repository (and state for branches, outcome for merges, branch for conflicts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LABELS = ["policy", "host", "repository"]
STATES = ("in sync", "fast-forward", "merged", "diverged", "conflict", "verify failed",
          "rewritten", "deleted", "failed", "ignored")
OUTCOMES = ("fast-forward", "merged", "conflict", "verify failed", "diverged")
GAUGES = (
    ("opsagent_sync_last_run_success", "1 if the repository's last sync ran to the end with "
     "no branch needing a person.", "ok"),
    ("opsagent_sync_degraded", "1 if a remote could not be reached in the last sync.",
     "degraded"),
    ("opsagent_sync_last_success_timestamp_seconds", "When every remote of the repository was "
     "last in step (or put in step).", "last_success"),
    ("opsagent_sync_lost_commits", "Commits the last sync found reachable from no remote head "
     "nor kept ref (must be 0).", "lost"),
    ("opsagent_sync_duration_seconds", "How long the repository's last sync took.", "seconds"),
    ("opsagent_sync_schedule_interval_seconds", "The policy's schedule interval: alert when "
     "the last success is older than a few of these.", "interval"),
)


def families(rows: list[tuple[str, str, dict[str, Any]]]) -> Iterator[Metric]:
    """rows: (policy, host, facts) of every sync policy and host."""
    for name, text, key in GAUGES:
        family = GaugeMetricFamily(name, text, labels=LABELS)
        for policy, host, repo, facts in _repositories(rows):
            if key in facts:
                family.add_metric([policy, host, repo], facts[key])
        yield family
    branches = GaugeMetricFamily("opsagent_sync_branches", "Branches by state after the last "
                                 "sync: in sync, fast-forward (put in step), diverged, "
                                 "rewritten, deleted, failed, ignored.",
                                 labels=[*LABELS, "state"])
    for policy, host, repo, facts in _repositories(rows):
        counts = facts.get("branches", {})
        for state in STATES:
            branches.add_metric([policy, host, repo, state], counts.get(state, 0))
    yield branches
    merges = CounterMetricFamily("opsagent_sync_merges", "Branches put in step by outcome: "
                                 "fast-forward, merged (without a person), and each new "
                                 "conflict, verify failed or diverged (ff-only) set of heads.",
                                 labels=[*LABELS, "outcome"])
    conflicts = GaugeMetricFamily("opsagent_sync_conflict_since_timestamp_seconds", "When each "
                                  "branch that needs a person (conflict, verify failed, "
                                  "diverged) became so.", labels=[*LABELS, "branch", "state"])
    for policy, host, repo, facts in _repositories(rows):
        for outcome in OUTCOMES:
            merges.add_metric([policy, host, repo, outcome],
                              facts.get("outcomes", {}).get(outcome, 0))
        for branch, found in sorted(facts.get("conflicts", {}).items()):
            if isinstance(found, dict) and "since" in found:
                conflicts.add_metric([policy, host, repo, branch, found["state"]], found["since"])
    yield merges
    yield conflicts


def _repositories(rows: list[tuple[str, str, dict[str, Any]]]
                  ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for policy, host, facts in rows:
        for repo, found in sorted(facts.get("repositories", {}).items()):
            if isinstance(found, dict):
                yield policy, host, repo, found
