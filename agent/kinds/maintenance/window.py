"""A maintenance window: days of the week, a start on the wall clock of a time zone, a
duration. Maintenance acts only inside it; outside, a run only says what is pending.

The duration is real time: a 3 h window that spans a daylight-saving change is still
three hours long. A start the clock skips that day (02:30 when clocks spring forward at
02:00) opens when the clock passes it, at the change (03:00 new time), as cron runs such
a job; a start the clock shows twice (autumn) opens at its first showing. A window is the day it starts on:
`days: [sun], start: "23:00", duration: 3h` runs into Monday.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from agent.core.durations import Duration

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 86400


def _day(value: object) -> object:
    """mon, Mon, monday, Monday: all mon."""
    if isinstance(value, str):
        text = value.strip().lower()
        for day, full in zip(DAYS, ("monday", "tuesday", "wednesday", "thursday", "friday",
                                    "saturday", "sunday"), strict=True):
            if text in (day, full):
                return day
    return value


class Window(BaseModel):
    """When a maintenance policy may act; outside it a run only reports what is pending."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Annotated[Day, BeforeValidator(_day)]] = Field(
        list(DAYS), min_length=1, description="Days the window opens on (mon ... sun).",
        examples=[["sat", "sun"]])
    start: str = Field(description="When it opens, HH:MM on the time zone's wall clock.",
                       examples=["02:00"])
    duration: Duration = Field(description="How long it stays open (real time, at most a "
                               "week).", examples=["3h"])
    timezone: str = Field("UTC", description="An IANA time zone; its daylight-saving "
                          "changes are followed.", examples=["Europe/Rome"])

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        try:
            datetime.time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected HH:MM on a 24-hour clock, e.g. 02:00, got {value!r}") from None
        if len(value) != 5:
            raise ValueError(f"expected HH:MM on a 24-hour clock, e.g. 02:00, got {value!r}")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int) -> int:
        if not 0 < value <= WEEK:
            raise ValueError("expected a duration above 0s and at most 1w")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone this machine knows (an IANA name "
                             "such as Europe/Rome or UTC)") from None
        return value

    def _start_on(self, day: datetime.date) -> float:
        """The first instant the zone's clock shows `start` or later on that day."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        wall = datetime.datetime.combine(day, datetime.time.fromisoformat(self.start))
        first = wall.replace(tzinfo=zone).timestamp()  # fold 0: the first showing
        if datetime.datetime.fromtimestamp(first, zone).replace(tzinfo=None) == wall:
            return first
        # skipped by a spring-forward: the clock passes start at the change itself,
        # which lies between the two readings of the skipped time
        low, high = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(first)
        while low < high:
            middle = (low + high) // 2
            if datetime.datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle + 1
        return float(low)

    def opened(self, now: float) -> float | None:
        """When the window that `now` is in opened, or None when it is closed."""
        today = datetime.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone)).date()
        for back in range(0, 9):
            day = today - datetime.timedelta(days=back)
            if DAYS[day.weekday()] in self.days:
                began = self._start_on(day)
                if began <= now < began + self.duration:
                    return began
        return None

    def next_open(self, now: float) -> float:
        """When the window next opens after `now`."""
        today = datetime.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone)).date()
        for ahead in range(0, 9):
            day = today + datetime.timedelta(days=ahead)
            if DAYS[day.weekday()] in self.days and self._start_on(day) > now:
                return self._start_on(day)
        raise AssertionError("a window with a day opens within 8 days")

    def said(self, now: float) -> str:
        """`open until ...` or `closed, opens ...`, on the window's clock."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        opened = self.opened(now)

        def shown(at: float) -> str:
            return datetime.datetime.fromtimestamp(at, zone).strftime(f"%a %Y-%m-%d %H:%M {self.timezone}")

        if opened is not None:
            return f"open until {shown(opened + self.duration)}"
        return f"closed, opens {shown(self.next_open(now))}"
