"""Maintenance windows against a brute-force oracle: every minute of a year on the zone's
clock, a window opening at the first minute whose wall time reaches its start on one of
its days and lasting its duration in real time. Checked every 15 minutes over 2026 in
Europe/Rome (both daylight-saving changes fall on Sunday nights) and in UTC."""

from __future__ import annotations

import bisect
import datetime
import functools
import zoneinfo

import pytest

from agent.kinds.maintenance.window import DAYS, Window

YEAR = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()
END = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC).timestamp()


def oracle(window: Window) -> list[tuple[float, float]]:
    return _oracle(window.model_dump_json())


@functools.cache
def _oracle(text: str) -> list[tuple[float, float]]:
    """Every opening of the window in the year (and the week before), by walking minutes."""
    window = Window.model_validate_json(text)
    zone = zoneinfo.ZoneInfo(window.timezone)
    hour, minute = map(int, window.start.split(":"))
    targets = []
    day = datetime.date(2025, 12, 20)
    while day <= datetime.date(2027, 1, 1):
        if DAYS[day.weekday()] in window.days:
            targets.append(datetime.datetime(day.year, day.month, day.day, hour, minute))
        day += datetime.timedelta(days=1)
    openings = []
    t = datetime.datetime(2025, 12, 19, tzinfo=datetime.UTC).timestamp()
    for target in targets:  # in order; the wall clock only ever repeats an hour
        while datetime.datetime.fromtimestamp(t, zone).replace(tzinfo=None) < target:
            t += 60
        openings.append((t, t + window.duration))
    return openings


def is_open(openings: list[tuple[float, float]], t: float) -> bool:
    i = bisect.bisect_right([a for a, _ in openings], t) - 1
    return any(a <= t < b for a, b in openings[max(0, i - 8):i + 1])


WINDOWS = [
    Window(days=["sat", "sun"], start="02:00", duration=3 * 3600, timezone="Europe/Rome"),
    Window(start="02:30", duration=3600, timezone="Europe/Rome"),  # skipped in March
    Window(days=["sun"], start="23:00", duration=3 * 3600, timezone="Europe/Rome"),  # into Monday
    Window(days=["mon", "thu"], start="00:00", duration=2 * 86400, timezone="UTC"),  # overlaps
]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{','.join(w.days)}@{w.start}")
def test_a_window_is_open_exactly_when_the_oracle_says_over_a_year(window: Window) -> None:
    openings = oracle(window)
    wrong = []
    t = YEAR
    while t < END:
        if (window.opened(t) is not None) != is_open(openings, t):
            wrong.append(datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat())
        t += 900
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{','.join(w.days)}@{w.start}")
def test_the_next_opening_is_the_oracles_next_start(window: Window) -> None:
    starts = sorted({a for a, _ in oracle(window)})
    t = YEAR
    while t < END - 8 * 86400:
        assert window.next_open(t) == starts[bisect.bisect_right(starts, t)]
        t += 3 * 3600 + 420


def test_daylight_saving_nights_in_rome() -> None:
    rome = zoneinfo.ZoneInfo("Europe/Rome")
    w = Window(days=["sun"], start="02:30", duration=3600, timezone="Europe/Rome")

    def at(text: str) -> float:
        return datetime.datetime.fromisoformat(text).timestamp()

    # 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 is never shown: open at the change
    assert w.opened(at("2026-03-29T00:59:00+00:00")) is None
    assert w.opened(at("2026-03-29T01:00:00+00:00")) == at("2026-03-29T01:00:00+00:00")
    assert w.opened(at("2026-03-29T02:00:00+00:00")) is None  # an hour of real time
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 is shown twice: the first
    assert w.opened(at("2026-10-25T00:30:00+00:00")) == at("2026-10-25T00:30:00+00:00")
    assert w.opened(at("2026-10-25T01:30:00+00:00")) is None  # the second showing
    said = w.said(at("2026-10-25T01:30:00+00:00"))
    assert said == "closed, opens Sun 2026-11-01 02:30 Europe/Rome", said
    assert datetime.datetime.fromtimestamp(at("2026-10-25T00:30:00+00:00"), rome).hour == 2


def test_full_day_names_and_capitals_are_accepted() -> None:
    assert Window(days=["Saturday", "sun"], start="02:00", duration=60).days == ["sat", "sun"]
