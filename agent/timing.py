"""When a policy runs on a host: its schedule's slots, a splay fixed per policy and host,
and a missed slot made up once after downtime.

Slots are `every` (aligned to the Unix epoch, so they do not drift with restarts), a
daily `at` (local time) or a `cron` expression (local time, via cronsim). A host's run of
a policy fires at slot + splay offset; the offset is a hash of policy and host, the same
on every restart and on every machine, like Puppet's splay but deterministic.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cronsim import CronSim

from agent.policy.model import Schedule


def splay_offset(policy: str, host: str, splay: int) -> int:
    """Seconds from 0 to splay, fixed for this policy and host."""
    if splay <= 0:
        return 0
    digest = hashlib.sha256(f"{policy}\0{host}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (splay + 1)


def slot_after(schedule: Schedule, t: float) -> float:
    """The first slot strictly after t."""
    if schedule.every:
        return (t // schedule.every + 1) * schedule.every
    if schedule.at:
        hour, minute = (int(x) for x in schedule.at.split(":"))
        local = dt.datetime.fromtimestamp(t)
        slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if slot.timestamp() <= t:
            slot = (local + dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                          microsecond=0)
        return slot.timestamp()
    assert schedule.cron
    return next(CronSim(schedule.cron, _local(t))).timestamp()


def slot_at_or_before(schedule: Schedule, t: float) -> float:
    """The last slot at or before t."""
    if schedule.every:
        return t // schedule.every * schedule.every
    if schedule.at:
        after = slot_after(schedule, t)
        previous = dt.datetime.fromtimestamp(after) - dt.timedelta(days=1)
        return previous.timestamp()
    assert schedule.cron
    return next(CronSim(schedule.cron, _local(t + 1), reverse=True)).timestamp()


def next_run(schedule: Schedule, policy: str, host: str, last: float | None, now: float,
             started: float) -> float:
    """When this host's run of this policy is next due.

    last: when it last started (any command), None if never; started: when the daemon
    started. A slot missed while the daemon was down is made up once, now; a policy on
    `every` that never ran starts at daemon start + its offset, the others at their next slot.
    On `every`, runs are at least half an interval apart.
    """
    offset = splay_offset(policy, host, schedule.splay)
    following = slot_after(schedule, now - offset) + offset
    if last is None:
        return min(started + offset, following) if schedule.every else following
    if last < slot_at_or_before(schedule, now - offset) + offset:
        return now
    if schedule.every:  # a run off the slots (the first, one made up) is not followed at once
        return max(following, slot_after(schedule, last + schedule.every / 2 - offset) + offset)
    return following


def interval(schedule: Schedule) -> float:
    """Seconds between two runs: `every`, a day for `at`, for `cron` the gap between the
    two slots after a fixed point (2000-01-01)."""
    if schedule.every:
        return float(schedule.every)
    if schedule.at:
        return 86400.0
    first = slot_after(schedule, 946684800.0)
    return slot_after(schedule, first) - first


def _local(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t).astimezone()
