"""The deploys' metric families, from the deploys table: each policy's newest deploy (its
status, when it last moved, how long it took), finished deploys by outcome, hosts rolled
back, and analysis measurements by verdict. Statuses are labels with _ for spaces."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.state import deploys

STATUSES = ("progressing", "paused", "succeeded", "failed", "aborted", "rolled back")


def _label(status: str) -> str:
    return status.replace(" ", "_")


def families(db: sqlite3.Connection) -> Iterator[Metric]:
    try:
        return iter(list(_families(db)))
    except sqlite3.OperationalError:  # a store of before deploys (schema 5), read as it is
        return iter(())


def _families(db: sqlite3.Connection) -> Iterator[Metric]:
    status = GaugeMetricFamily("opsagent_deploy_status", "1 for the status of the policy's "
                               "newest deploy (progressing, paused, succeeded, failed, aborted, "
                               "rolled_back), 0 for the others.", labels=["policy", "status"])
    moved = GaugeMetricFamily("opsagent_deploy_updated_timestamp_seconds", "When the policy's "
                              "newest deploy last moved on (a step, a measurement, a request).",
                              labels=["policy"])
    took = GaugeMetricFamily("opsagent_deploy_duration_seconds", "How long the policy's newest "
                             "deploy took, or has taken so far.", labels=["policy"])
    for policy, found, _, started, finished, updated in deploys.last_per_policy(db):
        for one in STATUSES:
            status.add_metric([policy, _label(one)], int(one == found))
        moved.add_metric([policy], updated)
        took.add_metric([policy], (finished or time.time()) - started)
    yield from (status, moved, took)
    outcomes = CounterMetricFamily("opsagent_deploys", "Finished deploys by outcome.",
                                   labels=["policy", "outcome"])
    for policy, outcome, count in deploys.outcomes(db):
        outcomes.add_metric([policy, _label(outcome)], count)
    yield outcomes
    rollbacks = CounterMetricFamily("opsagent_deploy_host_rollbacks", "Hosts a deploy put back "
                                    "on their verified release.", labels=["policy"])
    for policy, count in deploys.rollbacks(db):
        rollbacks.add_metric([policy], count)
    yield rollbacks
    measured = CounterMetricFamily("opsagent_deploy_analysis_measurements", "Analysis "
                                   "measurements by metric and verdict (passed, failed, "
                                   "inconclusive).", labels=["policy", "metric", "verdict"])
    for policy, metric, verdict, count in deploys.measurement_counts(db):
        measured.add_metric([policy, metric, verdict], count)
    yield measured
