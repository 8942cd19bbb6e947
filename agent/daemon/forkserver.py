"""The warm parent of the daemon's runs: a process that has imported what `opsagent apply`
needs once, and forks a child for each run.

A run's child is what a cold `python -m agent apply ...` would be (its own process,
session and memory, returned when it ends), without the second it takes to start an
interpreter and import pyinfra, gevent and the kinds. The server itself runs no
greenlet and no thread: it waits in select() for a request or a child's end, so a fork
copies nothing half-done.

    python -m agent.daemon.forkserver FD

FD is its end of a SOCK_SEQPACKET socket pair. A request is one JSON packet
{"id", "args", "env", "cwd"} carrying two file descriptors, the run's stdout and
stderr; the answers are {"id", "pid"} at once (or {"id", "error"}), then
{"id", "exit"} when the child ended, with the exit code as Popen gives it (minus the
signal number for a killed child). The server ends when the daemon's end closes; each
child gets SIGTERM when the server ends (PR_SET_PDEATHSIG), so no run goes on unseen.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from typing import Any, NoReturn

PR_SET_PDEATHSIG = 1
PACKET = 1 << 20  # a request's largest size: args and env, a megabyte is ample


def preload() -> None:
    """gevent's patches first, as `opsagent apply` does, then everything a run imports."""
    from agent import patching

    patching.patch_all()
    import agent.cli.apply  # noqa: F401
    import agent.engine.run  # noqa: F401
    import agent.runs  # noqa: F401
    from agent.engine import catalog
    from agent.kinds import KINDS

    for name in KINDS:
        KINDS[name]
    for module in catalog.live_modules():
        catalog.operations(module)
        __import__(f"pyinfra.operations.{module}")


def serve(sock: socket.socket) -> None:
    """Fork a child per request; report each child's end; return when the daemon is gone."""
    from gevent import monkey

    select = monkey.get_original("select", "select")
    fork, waitpid = monkey.get_original("os", ["fork", "waitpid"])
    lives: dict[int, tuple[int, int]] = {}  # read end of a child's life pipe: (id, pid)
    while True:
        ready, _, _ = select([sock.fileno(), *lives], [], [], 1.0)
        for fd in ready:
            if fd == sock.fileno():
                if not _request(sock, lives, fork):
                    return
            else:
                os.close(fd)  # EOF: the child's end of it closed as it exited
                ident, pid = lives.pop(fd)
                _ended(sock, ident, waitpid(pid, 0)[1])
        for fd, (ident, pid) in list(lives.items()):  # a child whose pipe a grandchild holds
            done, status = waitpid(pid, os.WNOHANG)
            if done:
                os.close(fd)
                del lives[fd]
                _ended(sock, ident, status)


def _request(sock: socket.socket, lives: dict[int, tuple[int, int]], fork: Any) -> bool:
    try:
        data, fds, _, _ = socket.recv_fds(sock, PACKET, 2)
    except OSError:
        return False
    if not data:
        return False
    request = json.loads(data)
    ident = request["id"]
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        _send(sock, {"id": ident, "error": "a request carries stdout and stderr"})
        return True
    life_r, life_w = os.pipe()
    try:
        pid = fork()
    except OSError as e:
        for fd in (*fds, life_r, life_w):
            os.close(fd)
        _send(sock, {"id": ident, "error": f"fork: {e}"})
        return True
    if pid == 0:
        os.close(life_r)
        for fd in lives:
            os.close(fd)
        _child(sock, request, fds)  # keeps life_w open: closed by its exit
    for fd in (*fds, life_w):
        os.close(fd)
    lives[life_r] = (ident, pid)
    _send(sock, {"id": ident, "pid": pid})
    return True


def _child(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the run, as a cold start would have; never returns."""
    sock.close()
    devnull = os.open(os.devnull, os.O_RDONLY)
    become(request, [devnull, *fds])


def become(request: dict[str, Any], stdio: list[int], setup: Any = None) -> NoReturn:
    """In a forked child: the command of request ({"args", "env", "cwd"}, and "umask" if
    given) on the file descriptors stdio (stdin, stdout, stderr), in a session of its own
    and ended by SIGTERM with its parent, as a cold start of it would run; setup() first,
    if given. Never returns."""
    code = 70  # EX_SOFTWARE, if what follows fails before the run does
    try:
        os.setsid()
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in set(stdio) - {0, 1, 2}:
            os.close(fd)
        os.chdir(request["cwd"])
        if "umask" in request:
            os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["opsagent", *request["args"]]
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a cold start
        if setup is not None:
            setup()
        import gevent

        gevent.reinit()
        from agent.cli import exit_code

        code = exit_code(request["args"])
    except SystemExit as e:  # as the interpreter would end a cold run
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _ended(sock: socket.socket, ident: int, status: int) -> None:
    code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
    _send(sock, {"id": ident, "exit": code})


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the daemon is gone: the loop ends at the socket's EOF
        sock.send(json.dumps(message).encode())


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the daemon, which stops us
    sock = socket.socket(fileno=int(sys.argv[1]))
    preload()
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    serve(sock)


if __name__ == "__main__":
    main()
