"""Schedules: slots, splay, missed runs made up once."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.policy.model import Schedule
from agent.timing import next_run, slot_after, slot_at_or_before, splay_offset

HOUR = 3600.0


def local(*args: int) -> float:
    return dt.datetime(*args).timestamp()  # type: ignore[arg-type]


def test_every_slots_are_aligned_to_the_epoch() -> None:
    s = Schedule(every="1h")
    assert slot_after(s, 10 * HOUR) == 11 * HOUR
    assert slot_after(s, 10 * HOUR + 1) == 11 * HOUR
    assert slot_at_or_before(s, 10 * HOUR) == 10 * HOUR
    assert slot_at_or_before(s, 11 * HOUR - 1) == 10 * HOUR


def test_at_is_daily_local_time() -> None:
    s = Schedule(at="02:30")
    assert slot_after(s, local(2026, 11, 22, 1, 0)) == local(2026, 11, 22, 2, 30)
    assert slot_after(s, local(2026, 11, 22, 2, 30)) == local(2026, 11, 23, 2, 30)
    assert slot_at_or_before(s, local(2026, 11, 22, 2, 30)) == local(2026, 11, 22, 2, 30)
    assert slot_at_or_before(s, local(2026, 11, 22, 2, 29)) == local(2026, 11, 21, 2, 30)


def test_cron_weekdays() -> None:
    s = Schedule(cron="30 2 * * 1-5")
    friday = local(2026, 11, 20, 3, 0)
    assert slot_after(s, friday) == local(2026, 11, 23, 2, 30)  # skips the weekend
    assert slot_at_or_before(s, friday) == local(2026, 11, 20, 2, 30)
    assert slot_at_or_before(s, local(2026, 11, 20, 2, 30)) == local(2026, 11, 20, 2, 30)


def test_splay_is_fixed_per_policy_and_host_and_spreads_hosts() -> None:
    assert splay_offset("p", "h1", 0) == 0
    assert splay_offset("p", "h1", 600) == splay_offset("p", "h1", 600)
    offsets = {splay_offset("p", f"h{i}", 600) for i in range(50)}
    assert len(offsets) > 40 and all(0 <= o <= 600 for o in offsets)
    assert splay_offset("p", "h1", 600) != splay_offset("q", "h1", 600) or \
        splay_offset("p", "h2", 600) != splay_offset("q", "h2", 600)


def test_next_run_waits_for_the_next_slot_plus_offset() -> None:
    s = Schedule(every="1h", splay="10m")
    off = splay_offset("p", "h1", 600)
    now = 100 * HOUR + 1200
    last = 100 * HOUR + off  # ran in this slot already
    assert next_run(s, "p", "h1", last, now, started=now) == 101 * HOUR + off


def test_a_missed_run_happens_once_after_downtime() -> None:
    s = Schedule(every="1h")
    last = 90 * HOUR  # down for ten slots
    now = 100 * HOUR + 5
    assert next_run(s, "p", "h1", last, now, started=now) == now
    # the run starts now; afterwards the next is the next slot, not the nine others missed
    assert next_run(s, "p", "h1", now, now + 1, started=now) == 101 * HOUR


def test_never_run_every_starts_at_daemon_start_plus_offset_cron_waits() -> None:
    every = Schedule(every="1d", splay="1h")
    off = splay_offset("p", "h1", 3600)
    boot = 100 * 86400 + 4000.0  # the day's slot (+ offset) has passed: start, do not wait a day
    assert next_run(every, "p", "h1", None, boot, started=boot) == boot + off
    cron = Schedule(cron="0 3 * * *")
    now = local(2026, 11, 22, 1, 0)
    assert next_run(cron, "p", "h1", None, now, started=now) == local(2026, 11, 22, 3, 0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"every": "1h", "cron": "* * * * *"}, "expected exactly one of every, at or cron"),
    ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
    ({"cron": "* * *"}, "expected five cron fields"),
    ({"at": "25:00"}, "expected a time as HH:MM"),
    ({"every": "0s"}, "expected a duration of at least 1s"),
])
def test_bad_schedules(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        Schedule(**fields)


def test_every_runs_are_at_least_half_an_interval_apart() -> None:
    s = Schedule(every="1h")
    boot = 100 * HOUR - 60  # first run a minute before a slot
    assert next_run(s, "p", "h1", boot, boot + 1, started=boot) == 101 * HOUR
    assert next_run(s, "p", "h1", 100 * HOUR, 100 * HOUR + 1, started=boot) == 101 * HOUR
