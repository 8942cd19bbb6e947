"""The maintenance kind's metric families, from the facts its runs observed. Labels stay
bounded: policy, host, and a state or task name from a fixed set (never a repository)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from agent.kinds.contract import Facts
from agent.kinds.maintenance.observe import PARTS, STATES

TASKS = ("prune", "repack", "pack-refs", "commit-graph", "packages", "cleanup")


def families(rows: Facts) -> Iterator[Metric]:
    """rows: (policy, host, facts) of every maintenance policy and host."""
    repos = GaugeMetricFamily("opsagent_maintenance_git_repositories", "Git repositories by "
                              "state at the last run: healthy, needs-maintenance (pending "
                              "outside the window or in check mode), locked (being written), "
                              "fsck-failing, error.", labels=["policy", "host", "state"])
    checked = GaugeMetricFamily("opsagent_maintenance_last_run_timestamp_seconds", "When the "
                                "host's repositories were last read.", labels=["policy", "host"])
    cleared = GaugeMetricFamily("opsagent_maintenance_git_stale_locks_cleared", "Stale locks "
                                "(left by a crash) the last run cleared.", labels=["policy", "host"])
    size = GaugeMetricFamily("opsagent_maintenance_git_size_bytes", "Disk used by the objects "
                             "(loose and packed) of the host's repositories that the last run "
                             "could read.", labels=["policy", "host"])
    for policy, host, facts in rows:
        counts = facts.get("repositories", {})
        for state in STATES:
            repos.add_metric([policy, host, state], counts.get(state, 0))
        if "size_bytes" in facts:
            size.add_metric([policy, host], facts["size_bytes"])
        if "at" in facts:
            checked.add_metric([policy, host], facts["at"])
        cleared.add_metric([policy, host], facts.get("cleared_locks", 0))
    yield repos
    yield size
    yield checked
    yield cleared
    at = GaugeMetricFamily("opsagent_maintenance_task_last_run_timestamp_seconds", "When the "
                           "task last ran on some repository of the host.",
                           labels=["policy", "host", "task"])
    ok = GaugeMetricFamily("opsagent_maintenance_task_last_run_success", "1 if the task "
                           "succeeded on every repository it last ran on.",
                           labels=["policy", "host", "task"])
    for policy, host, facts in rows:
        for task, done in sorted(facts.get("tasks", {}).items()):
            if task in TASKS:
                at.add_metric([policy, host, task], done.get("at", 0))
                ok.add_metric([policy, host, task], done.get("ok", 0))
    yield at
    yield ok
    reclaimed = GaugeMetricFamily("opsagent_maintenance_cleanup_reclaimed_bytes", "Bytes the "
                                  "last cleanup gave back, by part: journal, apt_cache, paths.",
                                  labels=["policy", "host", "part"])
    pending = GaugeMetricFamily("opsagent_maintenance_cleanup_pending_bytes", "Bytes a cleanup "
                                "would give back, as read by the last run that could not act "
                                "(outside its window, or check mode).",
                                labels=["policy", "host", "part"])
    for policy, host, facts in rows:
        cleanup = facts.get("cleanup")
        if not cleanup:
            continue
        family = pending if cleanup.get("pending") else reclaimed
        for part in PARTS:
            family.add_metric([policy, host, part], cleanup.get("bytes", {}).get(part, 0))
    yield reclaimed
    yield pending
    updates = GaugeMetricFamily("opsagent_maintenance_updates_pending", "Package upgrades apt "
                                "has for the host at the last run: security ones, and all.",
                                labels=["policy", "host", "kind"])
    reboot = GaugeMetricFamily("opsagent_maintenance_reboot_required", "1 if the host asks for "
                               "a reboot (/run/reboot-required, or needrestart's kernel status).",
                               labels=["policy", "host"])
    services = GaugeMetricFamily("opsagent_maintenance_services_restart_pending", "Services "
                                 "still using replaced files after the last run.",
                                 labels=["policy", "host"])
    for policy, host, facts in rows:
        got = facts.get("packages")
        if not got:
            continue
        updates.add_metric([policy, host, "security"], got.get("pending_security", 0))
        updates.add_metric([policy, host, "all"], got.get("pending_all", 0))
        reboot.add_metric([policy, host], got.get("reboot_required", 0))
        services.add_metric([policy, host], got.get("services_pending", 0))
    yield updates
    yield reboot
    yield services
