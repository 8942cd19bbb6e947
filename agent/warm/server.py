"""`opsagent warm`: a process of this user's that has imported what a one-shot command
needs (pyinfra, gevent, pydantic, the kinds) and forks a child for each command the CLI
hands it (client.py), so `opsagent apply` starts in under 0.1 s instead of 0.4 s.

The child is the command as a cold start would run it (forkserver.become): its own
process and session, the caller's stdin, stdout, stderr, folder, environment and umask.
It is not the caller's in what a process inherits from its parent: limits, cgroup,
namespaces come from the server, so start the server where the commands would run.

Trust: the socket is the caller's own (a 0700 folder, a 0600 socket), and a caller whose
uid is not the server's is refused (SO_PEERCRED) even so. The audit log names the
caller's login (read from the kernel for the caller's pid), not the server's. A server
whose opsagent (or pyinfra, paramiko, gevent, pydantic, jinja2, ruamel) changed on disk
since it started, an upgrade, refuses commands and ends; they run cold. A caller that is
one of its own commands is refused too (it runs cold). It ends after `--idle` without a
command, or on SIGTERM or SIGINT (its commands under way are stopped as by SIGTERM, and
recorded).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.state import actor
from agent.warm.client import PACKET, served, source

ANSWER_WAIT = 5.0  # seconds a caller has to send its request once connected


@dataclass
class Command:
    conn: socket.socket
    pid: int
    name: str
    started: float = field(default_factory=time.monotonic)


class Server:
    def __init__(self, path: Path, idle: float) -> None:
        self.path, self.idle = path, idle
        self.listener = listen(path)  # before gevent's patches: a plain socket
        self.inode = os.stat(path).st_ino  # the socket file ours, to remove at the end
        self.plain = type(self.listener)
        self.stopping = False
        self.files: dict[str, float] = {}
        self.lives: dict[int, Command] = {}  # read end of a child's life pipe
        self.last = time.monotonic()

    def prepare(self) -> None:
        from agent.daemon.forkserver import preload

        preload()
        self.files = loaded_sources()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def serve(self) -> None:
        from gevent import monkey

        poll = monkey.get_original("select", "poll")
        waitpid = monkey.get_original("os", "waitpid")
        say(f"serving {self.path} (pid {os.getpid()}); ends after {self.idle:g} s without "
            "a command")
        try:
            while not self.stopping:
                if not self.lives and time.monotonic() - self.last > self.idle:
                    say("idle: ending")
                    return
                conns = {c.conn.fileno(): fd for fd, c in self.lives.items()}
                watch = poll()
                for fd in (self.listener.fileno(), *self.lives, *conns):
                    watch.register(fd, select.POLLIN)
                try:
                    ready = [fd for fd, _ in watch.poll(1000)]
                except InterruptedError:
                    continue
                for fd in ready:
                    if fd == self.listener.fileno():
                        self._accept()
                    elif fd in self.lives:
                        self._ended(fd, waitpid)
                    elif fd in conns and conns[fd] in self.lives:  # the caller went away
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.lives[conns[fd]].pid, signal.SIGTERM)
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:  # not a later server's
                self.path.unlink()
        self.listener.close()

    def _accept(self) -> None:
        try:
            fd, _ = self.listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return
        conn = self.plain(fileno=fd)
        fds: list[int] = []
        try:
            pid, uid, _ = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid():
                raise RefusedError(f"uid {uid} is not the server's")
            if descends(pid):
                raise RefusedError("a command the server runs asked it (it runs cold instead)")
            conn.settimeout(ANSWER_WAIT)
            data, fds, _, _ = socket.recv_fds(conn, PACKET, 3)
            request = json.loads(data)
            if len(fds) != 3:
                raise RefusedError("a request carries stdin, stdout and stderr")
            if request.get("source") != source():
                raise RefusedError("the caller runs another opsagent")
            if self.stopping:
                raise RefusedError("the server is ending")
            if changed(self.files):
                self.stopping = True
                raise RefusedError("opsagent changed on disk since the server started: ending")
            self._fork(conn, request, fds, pid)
        except (OSError, ValueError, KeyError, TypeError, RefusedError) as e:
            if isinstance(e, RefusedError):
                say(f"refused a command: {e}")
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"error": str(e)}).encode())
            conn.close()
        finally:
            for descriptor in fds:
                with contextlib.suppress(OSError):
                    os.close(descriptor)

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int],
              caller: int) -> None:
        from gevent import monkey

        from agent.daemon.forkserver import become

        login = actor.login_uid(caller)  # read now, while the caller waits
        life_r, life_w = os.pipe()
        pid = monkey.get_original("os", "fork")()
        if pid == 0:
            os.close(life_r)
            for fd, other in self.lives.items():
                os.close(fd)
                other.conn.close()
            self.listener.close()
            conn.close()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)

            def setup() -> None:
                served()
                actor.as_caller(login)
                os.environ.pop("OPSAGENT_TRIGGER", None)  # the daemon's runs never come here

            become({k: request[k] for k in ("args", "env", "cwd", "umask")}, list(fds), setup)
        os.close(life_w)
        conn.send(json.dumps({"pid": pid}).encode())
        name = str(request["args"][0]) if request["args"] else "-"
        self.lives[life_r] = Command(conn, pid, name)
        self.last = time.monotonic()

    def _ended(self, fd: int, waitpid: Any) -> None:
        os.close(fd)
        command = self.lives.pop(fd)
        status = waitpid(command.pid, 0)[1]
        code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        say(f"{command.name} (pid {command.pid}): exit {code} after "
            f"{time.monotonic() - command.started:.2f} s")  # logged before the caller ends
        with contextlib.suppress(OSError):
            command.conn.send(json.dumps({"exit": code}).encode())
        command.conn.close()
        self.last = time.monotonic()


class RefusedError(Exception):
    pass


def listen(path: Path) -> socket.socket:
    """The server's socket at path, in a folder only this user can enter; SystemExit when
    another server answers there, or the folder is not this user's alone."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = path.parent.stat()
    if folder.st_uid != os.getuid() or stat.S_IMODE(folder.st_mode) & 0o077:
        raise SystemExit(f"opsagent warm: {path.parent} must be this user's alone (mode 0700)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(path))
        raise SystemExit(f"opsagent warm: a server already answers at {path}")
    except (FileNotFoundError, ConnectionRefusedError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a server that ended without removing it
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def descends(pid: int) -> bool:
    """Whether pid is this process's child, or theirs (a few generations down)."""
    for _ in range(8):
        found = actor.parent(pid)
        if found is None or found <= 1:
            return False
        if found == os.getpid():
            return True
        pid = found
    return False


WATCHED = ("agent", "pyinfra", "paramiko", "gevent", "pydantic", "pydantic_core", "jinja2",
           "ruamel")  # an upgrade of any of these ends the server


def loaded_sources() -> dict[str, float]:
    """The modules of WATCHED this process imported, and their files' modification times."""
    out = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] in WATCHED and path:
            with contextlib.suppress(OSError):
                out[path] = os.stat(path).st_mtime
    return out


def changed(files: dict[str, float]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return True
        except OSError:
            return True
    return False


def say(text: str) -> None:
    sys.stderr.write(f"opsagent warm: {text}\n")
    sys.stderr.flush()


def run(path: Path, idle: float) -> int:
    server = Server(path, idle)
    try:
        server.prepare()
    except BaseException:
        server.close()
        raise
    server.serve()
    return 0

