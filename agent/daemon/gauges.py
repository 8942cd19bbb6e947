"""The daemon's own metrics: config reloads, pulls, runs under way."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector


class DaemonCollector(Collector):
    def __init__(self) -> None:
        self.started = time.time()
        self.reload_ok: bool | None = None
        self.reload_ok_at = 0.0
        self.pull_ok: bool | None = None
        self.pull_ok_at = 0.0
        self.commit: str | None = None  # pull mode: the commit the policies in force came from
        self.running = 0
        self.store_ok = True

    def reloaded(self, ok: bool) -> None:
        self.reload_ok = ok
        if ok:
            self.reload_ok_at = time.time()

    def pulled(self, ok: bool) -> None:
        self.pull_ok = ok
        if ok:
            self.pull_ok_at = time.time()

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("opsagent_daemon_start_time_seconds", "When the daemon started.",
                                value=self.started)
        yield GaugeMetricFamily("opsagent_runs_in_progress", "Policy runs under way.",
                                value=self.running)
        yield GaugeMetricFamily("opsagent_state_store_ok", "1 if the daemon's last write to "
                                "its state store succeeded; 0: locked, full or broken (see "
                                "/healthz and the log).", value=int(self.store_ok))
        if self.reload_ok is not None:
            yield GaugeMetricFamily("opsagent_config_last_reload_successful", "1 if the last "
                                    "load of the policy set succeeded; 0: the last good set "
                                    "is still running.", value=int(self.reload_ok))
        if self.reload_ok_at:
            yield GaugeMetricFamily("opsagent_config_last_reload_success_timestamp_seconds",
                                    "When the policy set last loaded.", value=self.reload_ok_at)
        if self.pull_ok is not None:
            yield GaugeMetricFamily("opsagent_pull_last_successful", "1 if the last fetch of "
                                    "the policy repository succeeded.", value=int(self.pull_ok))
        if self.pull_ok_at:
            yield GaugeMetricFamily("opsagent_pull_last_success_timestamp_seconds", "When the "
                                    "policy repository was last fetched.", value=self.pull_ok_at)
        if self.commit:
            yield InfoMetricFamily("opsagent_pull_commit", "The commit of the policy repository "
                                   "whose policies are in force (the last good one).",
                                   value={"commit": self.commit})
