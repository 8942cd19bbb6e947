"""Locks in the state directory: one per host being converged, one for the daemon.

They are flock(2) locks, which the kernel drops when their process ends however it
ends, so a lock left by a killed process is free at once: nothing to clean up, no PID
guessing. Each lock file also says who holds it, for the message a waiter gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.state.errors import StateError
from agent.state.private import open_private, private_dir

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class LockTimeout(StateError):
    """A lock was not free within the time allowed; the message names its holder."""


def holder_text(path: Path) -> str:
    """'pid 123 (opsagent apply, since 12:00:01)', from what the holder wrote."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} ({info.get('what', '?')}, since {since})"


def _take(path: Path, what: str, deadline: float) -> int:
    private_dir(path.parent)
    fd = open_private(path, os.O_RDWR | os.O_CREAT)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeout(holder_text(path)) from None
            time.sleep(0.05)
    try:  # who holds it, for messages; the lock is held either way (on a full disk too)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(),
                  0)
    except OSError:
        pass
    return fd


def _release(fd: int) -> None:
    os.ftruncate(fd, 0)  # an unheld lock file names nobody
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def host_lock_path(state_dir: Path, host: str) -> Path:
    return state_dir / "locks" / f"host-{_UNSAFE.sub('_', host)}.lock"


@contextmanager
def host_locks(state_dir: Path, hosts: Iterable[str], what: str, wait: float) -> Iterator[None]:
    """Hold every host's lock (taken in name order, so two runs cannot deadlock)."""
    deadline = time.monotonic() + wait
    held: list[int] = []
    if hosts:
        private_dir(state_dir)  # before locks/ is made inside it
    try:
        for host in sorted(set(hosts)):
            path = host_lock_path(state_dir, host)
            try:
                held.append(_take(path, what, deadline))
            except LockTimeout as e:
                raise LockTimeout(f"host {host} is being converged by {e} in {state_dir}; "
                                  f"gave up after waiting {wait:g} s") from None
        yield
    finally:
        for fd in reversed(held):
            _release(fd)


class DaemonLock:
    """Held for the daemon's whole life: a second daemon on the same state dir is refused."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "daemon.lock"
        try:
            self.fd = _take(self.path, "opsagent daemon", time.monotonic())
        except LockTimeout as e:
            raise StateError(f"another opsagent daemon is using {state_dir}: {e}") from None

    def release(self) -> None:
        _release(self.fd)


def deploy_lock_path(state_dir: Path, policy: str) -> Path:
    return state_dir / "locks" / f"deploy-{_UNSAFE.sub('_', policy)}.lock"


@contextmanager
def deploy_lock(state_dir: Path, policy: str, wait: float) -> Iterator[None]:
    """One controller per deploy policy at a time."""
    path = deploy_lock_path(state_dir, policy)
    try:
        fd = _take(path, f"opsagent deploy {policy}", time.monotonic() + wait)
    except LockTimeout as e:
        raise LockTimeout(f"deploy {policy!r} is controlled by {e}") from None
    try:
        yield
    finally:
        _release(fd)


def daemon_holder(state_dir: Path) -> str | None:
    """Who runs the daemon on this state dir, or None if no daemon does."""
    return holder(state_dir / "daemon.lock")


def holder(path: Path) -> str | None:
    """Who holds this lock, or None if nobody does."""
    if not path.exists():
        return None
    fd = open_private(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder_text(path)
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None
