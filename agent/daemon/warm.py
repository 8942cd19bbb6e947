"""The daemon's side of the fork server (forkserver.py): start a run there, and follow it
as a Popen would be followed (poll, wait, send_signal, pid, returncode).

The server is started with the daemon and is ready about a second later; a run due
before that, or while the server is down, starts cold (a new interpreter), as every run
did before. A server that ends is started again (a minute later if it ended before it
was ready); the runs it had are stopped by SIGTERM (PR_SET_PDEATHSIG) and end as
killed by that signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)
ANSWER_WAIT = 10.0  # seconds for the server to answer a request with the child's pid
RESTART_EVERY = 60.0
PACKET = 1 << 16


class Lost(Exception):
    """The server cannot take the request (not ready, ended, or refused it)."""


class WarmProc:
    """A run forked by the server; its end comes as a message."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.lost = False  # the server ended while this ran: its end is read from /proc
        self.done = threading.Event()

    def poll(self) -> int | None:
        if self.returncode is None and self.lost and not _alive(self.pid):
            self._end(-15)  # SIGTERM, from PR_SET_PDEATHSIG
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            self.done.wait(left)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def _end(self, code: int) -> None:
        self.returncode = code
        self.done.set()


class ForkServer:
    """One fork server process, and the thread that reads its messages."""

    def __init__(self, on_exit: Callable[[], None]) -> None:
        self.on_exit = on_exit  # wakes the daemon's loop, as SIGCHLD does for a cold run
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = False
        self.was_ready = True  # the last server got ready: a new one may start at once
        self.started_at = -RESTART_EVERY
        self.procs: dict[int, WarmProc] = {}
        self.answers: dict[int, dict[str, Any]] = {}  # request id -> its pid (or error)
        self.early: dict[int, int] = {}  # request id -> exit code read before its pid was taken
        self.answered = threading.Condition()
        self.next_id = 0

    def start(self) -> None:
        """Start the server, unless it runs; one that ended before it was ready (it cannot
        import what it needs, say) is started again a minute later."""
        if self.proc is not None or (not self.was_ready and
                                     time.monotonic() - self.started_at < RESTART_EVERY):
            return
        self.was_ready = False
        self.started_at = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.daemon.forkserver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            ours.close()
            log.warning("fork server: %s; runs start cold", e, extra={"event": "warm_failed"})
            return
        finally:
            theirs.close()
        self.sock = ours
        threading.Thread(target=self._read, args=(ours, self.proc), name="forkserver",
                         daemon=True).start()

    def run(self, args: list[str], env: dict[str, str], cwd: Path, out: IO[bytes],
            err: IO[bytes]) -> WarmProc:
        """Fork a run; Lost if the server cannot (the caller starts it cold)."""
        if not self.ready or self.sock is None:
            raise Lost("not ready")
        with self.answered:
            self.next_id += 1
            ident = self.next_id
        request = json.dumps({"id": ident, "args": args, "env": env, "cwd": str(cwd)})
        try:
            socket.send_fds(self.sock, [request.encode()], [out.fileno(), err.fileno()])
        except OSError as e:
            raise Lost(str(e)) from None
        deadline = time.monotonic() + ANSWER_WAIT
        with self.answered:
            while ident not in self.answers and self.ready:
                if not self.answered.wait(max(0.0, deadline - time.monotonic())):
                    break
            answer = self.answers.pop(ident, None)
            if answer is None or "pid" not in answer:
                raise Lost(answer["error"] if answer else "no answer")
            proc = self.procs[ident] = WarmProc(answer["pid"])
            if ident in self.early:
                proc._end(self.early.pop(ident))
                del self.procs[ident]
        return proc

    def close(self, timeout: float = 5.0) -> None:
        """End the server: it exits when its socket closes (no run is under way by then).
        The reader thread may be closing both at the same moment (the server ended)."""
        sock, proc = self.sock, self.proc
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _read(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                data = sock.recv(PACKET)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "ready" in message:
                self.ready = self.was_ready = True
                log.info("fork server ready (pid %d): runs start warm", message["ready"],
                         extra={"event": "warm_ready"})
                continue
            with self.answered:
                ident = message["id"]
                if "exit" in message:
                    done = self.procs.pop(ident, None)
                    if done is None:
                        self.early[ident] = message["exit"]
                    else:
                        done._end(message["exit"])
                else:
                    self.answers[ident] = message
                self.answered.notify_all()
            if "exit" in message:
                self.on_exit()
        self._ended(sock, proc)

    def _ended(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        with self.answered:
            self.ready = False
            for running in self.procs.values():
                running.lost = True
            self.procs.clear()
            self.answered.notify_all()
        sock.close()
        if self.sock is sock:
            self.sock, self.proc = None, None
        if code != 0:
            log.warning("fork server ended (exit status %d); runs start cold until it is "
                        "started again", code, extra={"event": "warm_ended"})
        self.on_exit()


def _alive(pid: int) -> bool:
    """Whether the process is there and not a zombie (its parent is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
