"""The daemon's bookkeeping of due runs: batching, no overlap, one host at a time."""

from __future__ import annotations

from agent.daemon.policyset import Scheduled
from agent.daemon.scheduler import Scheduler
from agent.policy.model import Schedule
from agent.timing import next_run

T0 = 1_000_000 * 60.0  # on a minute boundary


def policy(name: str, hosts: tuple[str, ...], every: str = "1m") -> Scheduled:
    return Scheduled(name, "tasks", "enforce", Schedule(every=every), hosts)


def test_due_hosts_of_a_policy_start_as_one_run_and_the_policy_never_overlaps() -> None:
    s = Scheduler(started=T0)
    s.load((policy("web", ("h1", "h2")),), {}, T0)
    (run,) = s.take(T0, slots=4)
    assert (run[0].name, run[1]) == ("web", ("h1", "h2"))
    assert s.take(T0 + 600, slots=4) == []  # still running: ten slots pass, nothing starts
    s.finished("web", ("h1", "h2"))
    (again,) = s.take(T0 + 600, slots=4)  # the waited-through slots make one run, not ten
    assert again[1] == ("h1", "h2")
    s.finished("web", ("h1", "h2"))
    assert s.take(T0 + 601, slots=4) == []


def test_two_policies_on_one_host_run_one_after_the_other() -> None:
    s = Scheduler(started=T0)
    s.load((policy("a", ("h1", "h2")), policy("b", ("h2", "h3"))), {}, T0)
    runs = s.take(T0, slots=4)
    started = {r[0].name: r[1] for r in runs}
    assert started == {"a": ("h1", "h2"), "b": ("h3",)}  # h2 waits for a
    s.finished("a", ("h1", "h2"))
    assert s.take(T0 + 1, slots=4) == []  # b is still running on h3
    s.finished("b", ("h3",))
    (later,) = s.take(T0 + 1, slots=4)
    assert (later[0].name, later[1]) == ("b", ("h2",))


def test_concurrency_limits_the_runs_started() -> None:
    s = Scheduler(started=T0)
    s.load(tuple(policy(f"p{i}", (f"h{i}",)) for i in range(5)), {}, T0)
    assert len(s.take(T0, slots=2)) == 2
    assert s.next_due() == T0  # the other three wait, still due


def test_a_reload_keeps_due_times_of_unchanged_policies() -> None:
    s = Scheduler(started=T0)
    s.load((policy("a", ("h1",)),), {("a", "h1"): T0 - 1}, T0)
    kept = s.due[("a", "h1")]
    s.load((policy("a", ("h1", "h2")), policy("b", ("h1",), every="1h")), {}, T0 + 5)
    assert s.due[("a", "h1")] == kept
    assert set(s.due) == {("a", "h1"), ("a", "h2"), ("b", "h1")}
    s.load((policy("a", ("h1",), every="2m"),), {("a", "h1"): T0 - 1}, T0 + 5)
    assert set(s.due) == {("a", "h1")} and s.due[("a", "h1")] != kept


def test_a_clock_stepped_back_keeps_intervals_and_moves_at_to_the_new_time() -> None:
    every = Scheduled("tick", "tasks", "enforce", Schedule(every=600), ("h1",))
    daily = Scheduled("nightly", "tasks", "enforce", Schedule(at="02:30"), ("h1",))
    now = 1_800_000_000.0
    s = Scheduler(started=now - 100)
    s.load((every, daily), {("tick", "h1"): now - 300, ("nightly", "h1"): now - 300}, now)
    tick_in = s.due[("tick", "h1")] - now
    stepped = now - 6 * 3600  # the wall clock is now 6 h behind
    s.clock_stepped(-6 * 3600, stepped)
    assert s.due[("tick", "h1")] - stepped == tick_in  # still due in the same real time
    assert s.due[("nightly", "h1")] == next_run(daily.schedule, "nightly", "h1", None, stepped,
                                               s.started)
    assert s.next_due() == min(s.due.values())


def test_a_policy_whose_definition_changed_is_due_at_once_unless_it_keeps_a_window() -> None:
    s = Scheduler(started=T0)
    tick = Scheduled("tick", "tasks", "enforce", Schedule(every=3600), ("h1",), "v1")
    nightly = Scheduled("nightly", "tasks", "enforce", Schedule(at="02:30"), ("h1",), "v1")
    s.load((tick, nightly), {("tick", "h1"): T0 - 1, ("nightly", "h1"): T0 - 1}, T0)
    window = s.due[("nightly", "h1")]
    assert s.due[("tick", "h1")] > T0 + 1800
    s.load((tick, nightly), {}, T0 + 5)  # the same definitions: nothing moves
    assert s.due[("tick", "h1")] > T0 + 1800
    edited = (Scheduled("tick", "tasks", "enforce", Schedule(every=3600), ("h1",), "v2"),
              Scheduled("nightly", "tasks", "enforce", Schedule(at="02:30"), ("h1",), "v2"))
    s.load(edited, {}, T0 + 10)
    assert s.due[("tick", "h1")] == T0 + 10  # a pulled commit takes effect at once
    assert s.due[("nightly", "h1")] == window  # a window is kept
