"""The deploy kind's per-host families, from the release state its runs read: which
release each host serves, and which one it would roll back to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric


def families(rows: list[tuple[str, str, dict[str, Any]]]) -> Iterator[Metric]:
    """rows: (policy, host, facts) of every deploy policy and host."""
    info = GaugeMetricFamily("opsagent_deploy_release_info", "The release a host's current "
                             "symlink points at (1), labelled with its version.",
                             labels=["policy", "host", "version"])
    verified = GaugeMetricFamily("opsagent_deploy_verified_release_info", "The last release "
                                 "that passed its checks on the host: where a rollback goes.",
                                 labels=["policy", "host", "version"])
    count = GaugeMetricFamily("opsagent_deploy_releases", "Releases kept on the host.",
                              labels=["policy", "host"])
    switched = GaugeMetricFamily("opsagent_deploy_switch_timestamp_seconds", "When the "
                                 "host's current symlink last moved.", labels=["policy", "host"])
    for policy, host, facts in rows:
        if facts.get("current"):
            info.add_metric([policy, host, str(facts["current"])], 1)
        if facts.get("verified"):
            verified.add_metric([policy, host, str(facts["verified"])], 1)
        count.add_metric([policy, host], len(facts.get("releases") or []))
        if facts.get("switched"):
            switched.add_metric([policy, host], float(facts["switched"]))
    yield from (info, verified, count, switched)
