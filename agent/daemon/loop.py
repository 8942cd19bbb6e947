"""The daemon: one loop that reloads, pulls, starts due runs, reaps finished ones, and
stops cleanly.

Signals only raise flags (SIGHUP: reload; SIGTERM/SIGINT: stop); the loop acts on them
between its steps, so nothing is half-done by a handler.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry

from agent.config import AgentConfig
from agent.core.hosts import LOCAL
from agent.core.results import RunResult
from agent.core.secrets import SecretError
from agent.daemon import runner
from agent.daemon.gauges import DaemonCollector
from agent.daemon.hooks import Hooks
from agent.daemon.http import Heartbeat, ListenError, serve
from agent.daemon.isolated import Validation, last_good
from agent.daemon.policyset import PolicySet, drop_unused, signature
from agent.daemon.pull import Puller, PullError, insecure
from agent.daemon.scheduler import Scheduler
from agent.daemon.warm import ForkServer
from agent.errors import Problems
from agent.metrics import exposition, registry_for
from agent.state.locks import DaemonLock
from agent.state.store import StateError, Store

log = logging.getLogger(__name__)
WATCH_EVERY = 2.0  # seconds between looks at the policy files' sizes and times
PRUNE_EVERY = 3600.0
CLOCK_STEP = 30.0  # seconds the wall clock may fall behind the monotonic one before it counts
PROBE_EVERY = 5.0  # seconds between checks that the store can record a run
STORE_WAIT = 2.0  # seconds a write waits for another process's lock: the loop must not stall
CURRENT = "current"  # under sets/: the digest of the set in force, for the next start


@dataclass
class Flags:
    wake: threading.Event = field(default_factory=threading.Event)
    reload: bool = False
    stop: bool = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload = True
        elif signum != signal.SIGCHLD:  # SIGCHLD only wakes the loop: a run ended
            self.stop = True
        self.wake.set()


class Daemon:
    def __init__(self, config: AgentConfig, state_dir: Path, cwd: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.cwd = cwd
        self.flags = Flags()
        self.heartbeat = Heartbeat()
        self.info = DaemonCollector()
        self.info_registry = CollectorRegistry(auto_describe=False)
        self.info_registry.register(self.info)
        self.scheduler = Scheduler(started=time.time())
        self.current: PolicySet | None = None
        self.children: list[runner.Child] = []
        self.unrecorded: list[tuple[runner.Child, RunResult]] = []  # failures the store refused
        self.next_runs_saved = True
        self.watched: tuple[tuple[str, int, int], ...] = ()
        self.validation: Validation | None = None  # a reload under way
        self.reload_again = ("", False)  # why to reload once it ends, and if on trial
        self.in_force_saved = True
        self.puller = None
        if config.pull:
            pull = config.pull
            self.puller = Puller(pull.url, state_dir / "pull", pull.username, pull.password,
                                 pull.verify.signed_by if pull.verify else ())
        self.pull_every = config.pull.interval if config.pull else 0
        self.hooks: Hooks | None = None
        self.settings = runner.Settings(state_dir, config.timeout, config.lock_wait, cwd,
                                       config.audit_syslog)
        self.warm = ForkServer(self.flags.wake.set) if config.warm_runs else None

    # -- sources: files named in agent.yml, or the pulled checkout -----------------------

    def _sources(self) -> tuple[list[Path], str, Path] | None:
        if self.puller is None:
            return self.config.policies, self.config.inventory, self.config.templates
        checkout = self.puller.checkout
        if checkout is None:
            return None
        return [checkout / "policies"], LOCAL, checkout / "templates"

    def reload(self, why: str, trial: bool = False) -> None:
        """Start validating the sources in a child process (see _poll_reload); if one is
        under way already, validate again once it ends. trial: the pulled commit on
        trial is accepted or rejected by the outcome."""
        if self.validation is not None:
            self.reload_again = (why, trial or self.reload_again[1])
            return
        sources = self._sources()
        if sources is None:
            return
        self.watched = signature(*sources)
        self.validation = Validation(*sources, self.state_dir, why, trial)

    def _poll_reload(self, store: Store) -> None:
        """Switch to the new set once it validated; nothing in the files can end the
        daemon: a set that fails (or crashes or overruns its validation) is logged, and
        the last good one keeps running."""
        if self.validation is None:
            return
        why, trial = self.validation.why, self.validation.trial and self.puller is not None
        try:
            new = self.validation.poll()
        except Problems as e:
            self.validation = None
            self._reload_failed(store, why, e)
            if trial:
                assert self.puller is not None
                self.puller.reject()
        else:
            if new is None:
                return  # still validating
            self.validation = None
            self._switch(store, new, why)
            self.info.reloaded(True)
            if trial:
                assert self.puller is not None
                self.puller.accept()
            if self.puller is not None:
                self.info.commit = self.puller.good
        if self.reload_again[0]:
            (again, on_trial), self.reload_again = self.reload_again, ("", False)
            self.reload(again, on_trial)

    def _reload_failed(self, store: Store, why: str, e: Problems) -> None:
        checkout = self.puller.checkout if self.puller is not None else None
        for problem in e.problems:
            if checkout is not None and problem.file.startswith(f"{checkout}/"):
                problem = replace(problem, file=problem.file.removeprefix(f"{checkout}/"))
            log.error("reload (%s): %s", why, problem, extra={"event": "reload_problem"})
        if self.current is None:
            self._resume_last_good(store)
        kept = f"; still running {self.current.digest}" if self.current else \
            "; no good policy set yet: nothing runs until the files are fixed"
        log.error("reload (%s) failed: %d problem(s)%s", why, len(e.problems), kept,
                  extra={"event": "reload_failed", "problems": len(e.problems)})
        self.info.reloaded(False)

    def _resume_last_good(self, store: Store) -> None:
        """At start with broken files: the set an earlier daemon last accepted, if any."""
        try:
            digest = (self.state_dir / "sets" / CURRENT).read_text().strip()
        except OSError:
            return
        previous = last_good(self.state_dir, digest)
        if previous is not None:
            self._switch(store, previous, "the last good set, kept from before")

    def _switch(self, store: Store, new: PolicySet, why: str) -> None:
        if self.current is None or new.digest != self.current.digest:
            self.scheduler.load(new.policies, store.last_runs(), time.time())
            self.next_runs_saved = False
            log.info("loaded policy set %s (%s): %d scheduled, %d one-shot only%s", new.digest, why,
                     len(new.policies), len(new.unscheduled),
                     f" ({', '.join(new.unscheduled)})" if new.unscheduled else "",
                     extra={"event": "reload_ok", "digest": new.digest})
        self.current = new
        if self.hooks is not None:
            self.hooks.known = frozenset(p.name for p in new.policies if p.kind == "sync")
        (self.state_dir / "sets" / CURRENT).write_text(new.digest + "\n")
        self.in_force_saved = False  # written by the loop, which survives a store fault
        drop_unused(self.state_dir, {new.digest, CURRENT} |
                    {c.policy_set.digest for c in self.children})

    def _save_in_force(self, store: Store, policy_set: PolicySet) -> None:
        """The set's policies and hosts, for compliance (status, /metrics, reports)."""
        store.set_in_force(policy_set.digest,
                           [(p.name, h) for p in policy_set.policies for h in p.hosts] +
                           [(name, "*") for name in policy_set.unscheduled])
        self.in_force_saved = True

    def _start_fetch(self) -> None:
        assert self.puller is not None
        try:
            self.puller.start_fetch()
        except (PullError, OSError) as e:
            log.error("pull: %s", e, extra={"event": "pull_failed"})
            self.info.pulled(False)

    def _pull(self) -> None:
        """Poll the fetch under way; a new commit goes on trial through a reload."""
        assert self.puller is not None
        try:
            changed = self.puller.poll_fetch()
        except PullError as e:
            log.error("pull: %s", e, extra={"event": "pull_failed"})
            self.info.pulled(False)
            if self.current is None and self.puller.checkout is not None:
                self.reload("the last good commit")
            return
        if changed is None:
            return  # still fetching
        self.info.pulled(True)
        if changed or self.current is None:
            commit = self.puller.candidate or self.puller.good or ""
            if changed:
                log.info("pull: new commit %s; validating it", commit[:12],
                         extra={"event": "pull_new", "commit": commit})
            self.reload(f"pulled {commit[:12]}", trial=changed)

    # -- runs ---------------------------------------------------------------------------

    def _reap(self, store: Store) -> None:
        for child in list(self.children):
            runner.overdue(child)
            if child.proc.poll() is None:
                continue
            failed = runner.finish(child)
            if failed is not None:
                self.unrecorded.append((child, failed))
            self.scheduler.finished(child.policy.name, child.hosts)
            self.children.remove(child)
        while self.unrecorded:  # kept until the store takes them
            runner.record_failure(store, *self.unrecorded[0])
            self.unrecorded.pop(0)

    def _launch(self, store: Store, now: float) -> None:
        if self.current is None or self.flags.stop:
            return
        slots = self.config.concurrency - len(self.children)
        if slots <= 0:
            return
        started = self.scheduler.take(now, slots)
        for policy, hosts in started:
            self.children.append(runner.start(policy, hosts, self.current, self.settings, now,
                                              self.warm))
        if started:
            self.next_runs_saved = False
        self.info.running = len(self.children)

    def _hooked(self, now: float) -> None:
        """The policies webhooks asked for: due now."""
        while self.hooks is not None and not self.hooks.due.empty():
            if self.scheduler.trigger(self.hooks.due.get(), now):
                self.next_runs_saved = False

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        lock = DaemonLock(self.state_dir)  # raises StateError naming the other daemon
        os.environ["OPSAGENT_TRIGGER"] = f"opsagent daemon (pid {os.getpid()})"  # who, in records
        try:
            with Store(self.state_dir, busy_timeout=STORE_WAIT) as store:
                return self._run(store)
        finally:
            lock.release()

    def _run(self, store: Store) -> int:
        address = self.config.address()
        registry = registry_for(store.path, self.info)
        if self.config.webhooks is not None:
            try:
                secret = self.config.webhooks.secret.resolve().reveal().encode()
            except SecretError as e:
                log.error("webhooks.secret: %s", e, extra={"event": "webhook_secret_failed"})
                return 1
            self.hooks = Hooks(secret, self.state_dir / "hooks.seen", self.flags.wake.set)
            if not address:
                log.warning("webhooks are configured but listen is empty: no endpoint",
                            extra={"event": "webhooks_unserved"})
        try:  # first, so that /healthz answers while the first pull or reload runs
            server = serve(address, lambda: self._metrics(store, registry), self.heartbeat,
                           self.hooks) if address else None
        except ListenError as e:
            log.error("%s", e, extra={"event": "listen_failed"})
            return 1
        if address:
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            log.info("serving /metrics and /healthz%s on http://%s:%d",
                     " and POST /hooks/sync/POLICY" if self.hooks else "", host, address[1],
                     extra={"event": "listening"})
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self.flags.handle)
        if self.puller is not None and insecure(self.puller.url):
            checked = ("only commits signed by pull.verify.signed_by run" if
                       self.puller.signed_by else "set pull.verify.signed_by, or use https:// "
                       "or ssh://")
            log.warning("pull: %s is fetched unencrypted and unauthenticated: anyone on the "
                        "way can change what runs here as %s; %s", self.puller.url,
                        "root" if os.getuid() == 0 else "this user", checked,
                        extra={"event": "pull_insecure"})
        if self.warm is not None:
            self.warm.start()
        if self.puller is None or self.puller.checkout is not None:
            self.reload("start")  # broken files: the daemon stays up and says so
        next_pull = time.monotonic()  # the first fetch at once, without waiting for it
        next_watch = time.monotonic() + WATCH_EVERY
        next_prune = next_probe = time.monotonic()
        try:
            clock = time.monotonic(), time.time()
            while not self.flags.stop:
                self.heartbeat.beat()
                mono, now = time.monotonic(), time.time()
                self._watch_clock(clock, (mono, now))
                clock = mono, now
                try:
                    if self.flags.reload:
                        self.flags.reload = False
                        self.reload("SIGHUP")
                    elif self.puller is None and mono >= next_watch:
                        next_watch = mono + WATCH_EVERY
                        sources = self._sources()
                        if sources and signature(*sources) != self.watched:
                            self.reload("files changed")
                    self._poll_reload(store)
                    if self.puller is not None and self.puller.fetching:
                        self._pull()
                    elif self.puller is not None and mono >= next_pull and not (
                            self.validation is not None and self.validation.trial):
                        # 0.9 to 1 interval: a fleet started at once soon fetches out of
                        # step, and a commit is never fetched later than one interval
                        next_pull = mono + self.pull_every * random.uniform(0.9, 1.0)
                        self._start_fetch()
                    if mono >= next_prune:
                        next_prune = mono + PRUNE_EVERY
                        self._prune(store, now)
                    self._reap(store)
                    if self.warm is not None:
                        self.warm.start()  # again, if it ended (at most once a minute)
                    self._hooked(now)
                    self._launch(store, now)
                    if not self.next_runs_saved:
                        store.set_next_runs(self.scheduler.due)
                        self.next_runs_saved = True
                    if not self.in_force_saved and self.current is not None:
                        self._save_in_force(store, self.current)
                    if mono >= next_probe or self.heartbeat.fault:
                        next_probe = mono + PROBE_EVERY
                        store.probe()
                    self._store_fault(None)
                except (sqlite3.Error, OSError, StateError) as e:  # locked, full or broken
                    self._store_fault(e)
                except Exception:  # a bug: logged with its traceback; the daemon goes on
                    log.exception("unexpected error in the scheduler loop; going on",
                                  extra={"event": "loop_error"})
                due = self.scheduler.next_due()
                pause = 1.0 if due is None else min(1.0, max(0.05, due - time.time()))
                self.flags.wake.wait(pause)
                self.flags.wake.clear()
            self._shutdown(store)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
        return 0

    def _watch_clock(self, before: tuple[float, float], after: tuple[float, float]) -> None:
        """A wall clock stepped back (NTP, an operator) must not delay interval runs.

        A step forward needs nothing: what became due runs now, once (and a suspended
        machine's missed runs are made up that way too)."""
        step = (after[1] - before[1]) - (after[0] - before[0])
        if step > -CLOCK_STEP:
            return
        self.scheduler.clock_stepped(step, after[1])
        self.next_runs_saved = False
        log.warning("the wall clock stepped back by %.1f h; interval schedules keep their "
                    "pace, at and cron follow the new time", -step / 3600,
                    extra={"event": "clock_stepped", "seconds": step})

    def _store_fault(self, error: Exception | None) -> None:
        """Log a store fault once when it begins and once when it ends."""
        fault = "" if error is None else str(error) if isinstance(error, StateError) else \
            f"state store {self.state_dir / 'state.db'}: {error}"
        if fault and not self.heartbeat.fault:
            log.error("%s; runs go on, their records wait until it works again", fault,
                      extra={"event": "store_failed"})
        elif not fault and self.heartbeat.fault:
            log.info("state store works again", extra={"event": "store_recovered"})
        self.heartbeat.fault = fault
        self.info.store_ok = not fault

    def _metrics(self, store: Store, registry: CollectorRegistry) -> bytes:
        try:
            return exposition(store.path, registry)
        except (sqlite3.Error, OSError):  # the daemon's own families still tell what is wrong
            from prometheus_client import generate_latest

            return bytes(generate_latest(self.info_registry))

    def _prune(self, store: Store, now: float) -> None:
        ret = self.config.retention
        ops, runs = store.prune(now - ret.results, now - ret.runs)
        if ops or runs:
            log.info("retention: dropped %d operation results and %d runs", ops, runs,
                     extra={"event": "pruned"})

    def _shutdown(self, store: Store) -> None:
        log.info("stopping: %d run(s) under way get up to %d s to end", len(self.children),
                 self.config.stop_timeout, extra={"event": "stopping"})
        if self.validation is not None:
            self.validation.kill()
        if self.puller is not None:
            self.puller.stop_fetch()
        for child in self.children:
            runner.stop(child, "the daemon was stopped")
        runner.wait_all(self.children, self.config.stop_timeout)
        if self.warm is not None:
            self.warm.close()
        try:
            self._reap(store)
        except (sqlite3.Error, OSError) as e:
            log.error("state store %s: %s; %d failed run(s) could not be recorded",
                      store.path, e, len(self.unrecorded), extra={"event": "store_failed"})
        log.info("stopped", extra={"event": "stopped"})
