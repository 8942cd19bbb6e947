"""The backup kind's metric families, from the facts its runs observed (one row per
policy and host). Labels: policy, host, repository, and check for the checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

LABELS = ["policy", "host", "repository"]

# name, help, how to read it from the facts
GAUGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("opsagent_backup_last_success_timestamp_seconds", "When this host's newest archive in the "
     "repository was made.", ("last_success",)),
    ("opsagent_backup_last_run_success", "1 if the last backup run succeeded (borg warnings "
     "included), 0 if any step failed.", ("success",)),
    ("opsagent_backup_last_run_duration_seconds", "How long the last backup run took on the "
     "host, checks included.", ("duration",)),
    ("opsagent_backup_last_archive_original_bytes", "Size of the files in the last archive.",
     ("archive", "original")),
    ("opsagent_backup_last_archive_compressed_bytes", "The last archive, compressed.",
     ("archive", "compressed")),
    ("opsagent_backup_last_archive_deduplicated_bytes", "What the last archive added to the "
     "repository (compressed, deduplicated).", ("archive", "deduplicated")),
    ("opsagent_backup_last_archive_files", "Files in the last archive.", ("archive", "files")),
    ("opsagent_backup_repository_bytes", "The repository's size on disk (unique chunks, "
     "compressed).", ("repository_size",)),
    ("opsagent_backup_archives", "This host's archives in the repository.", ("archives",)),
    ("opsagent_backup_schedule_interval_seconds", "The policy's schedule interval: alert when "
     "the last success is older than twice this.", ("interval",)),
)


def families(rows: list[tuple[str, str, dict[str, Any]]]) -> Iterator[Metric]:
    """rows: (policy, host, facts) of every backup policy and host."""
    for name, text, path in GAUGES:
        family = GaugeMetricFamily(name, text, labels=LABELS)
        for policy, host, facts in rows:
            value = _dig(facts, path)
            if value is not None:
                family.add_metric([policy, host, facts.get("repository", "")], value)
        yield family
    success = GaugeMetricFamily("opsagent_backup_check_success", "1 if the check passed when it "
                                "last ran.", labels=[*LABELS, "check"])
    when = GaugeMetricFamily("opsagent_backup_check_timestamp_seconds", "When the check last "
                             "ran.", labels=[*LABELS, "check"])
    drill = GaugeMetricFamily("opsagent_backup_restore_drill_success", "1 if the last restore "
                              "drill (every chunk of the latest archive extracted and verified) "
                              "passed.", labels=LABELS)
    for policy, host, facts in rows:
        repository = facts.get("repository", "")
        for check, outcome in sorted(facts.get("checks", {}).items()):
            success.add_metric([policy, host, repository, check], outcome["ok"])
            when.add_metric([policy, host, repository, check], outcome["at"])
            if check == "extract":
                drill.add_metric([policy, host, repository], outcome["ok"])
    yield from (success, when, drill)


def _dig(facts: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = facts
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None
