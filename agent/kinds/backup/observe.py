"""What a backup run tells the metrics: sizes from borg's --json output, check outcomes."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.backup.plan import CHECK, CREATE, STATISTICS
from agent.kinds.backup.spec import BackupSpec


def observe(spec: BackupSpec, ops: list[OpResult]) -> Observation | None:
    """Facts for the store, merged into the previous ones (checks not due keep theirs).

    None for check mode: a plan observes nothing."""
    if not ops or any(op.planned for op in ops):
        return None
    now = time.time()
    by_id = {op.id: op for op in ops}
    failed = [op for op in ops if op.status is Status.FAILED]
    facts: dict[str, Any] = {
        "repository": spec.repository,
        "success": int(not failed),
        "duration": round(sum(op.duration for op in ops), 3),
        "at": now,
        "error": f"{failed[0].name}: {failed[0].error}" if failed else "",
    }
    if spec.interval:
        facts["interval"] = spec.interval
    create = by_id.get(CREATE)
    if create is not None and create.status is Status.CHANGED:
        stats = _documents(create.stdout)[0]["archive"]
        facts["archive"] = {"name": stats["name"], "original": stats["stats"]["original_size"],
                            "compressed": stats["stats"]["compressed_size"],
                            "deduplicated": stats["stats"]["deduplicated_size"],
                            "files": stats["stats"]["nfiles"], "at": now}
    statistics = by_id.get(STATISTICS)
    if statistics is not None and statistics.status is Status.OK and statistics.stdout:
        info, listing, *host = _documents(statistics.stdout)
        archives = [a for a in listing["archives"] if ".checkpoint" not in a["name"]]
        facts["repository_size"] = info["cache"]["stats"]["unique_csize"]
        facts["archives"] = len(archives)
        if archives:
            newest = max(archives, key=lambda a: a["time"])
            facts["last_archive"] = newest["name"]
            offset = host[0]["utc_offset"] if host else ""
            facts["last_success"] = _timestamp(newest["time"], offset)
    checks = {}
    for op in ops:
        if not op.id.startswith(CHECK):
            continue
        name = op.id.removeprefix(CHECK)
        if op.status is Status.SKIPPED or op.diff.startswith("not due"):
            continue
        checks[name] = {"ok": int(op.status is Status.OK), "at": now,
                        "error": op.error if op.status is Status.FAILED else ""}
    facts["checks"] = checks
    return Observation(facts)


def _timestamp(local: str, offset: str) -> float:
    """An archive's time as seconds since the epoch; offset: the host's, e.g. +0100."""
    when = dt.datetime.fromisoformat(local)
    if when.tzinfo is None and offset:
        when = when.replace(tzinfo=dt.datetime.strptime(offset, "%z").tzinfo)
    return when.timestamp()


def _documents(text: str) -> list[Any]:
    """The JSON documents in a command's output, one after another."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    text = text.strip()
    while index < len(text):
        document, index = decoder.raw_decode(text, index)
        found.append(document)
        while index < len(text) and text[index].isspace():
            index += 1
    return found
