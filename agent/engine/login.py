"""A change that could lock the controller out, proven by a new SSH login (or undone).

The run's own connection survives an sshd reload, so it proves nothing: a new one is
opened with the same settings pyinfra used (address, user, key, known hosts), and the
change's confirm command runs over it. When the login fails, the undo runs over the run's
own connection at once.
"""

from __future__ import annotations

import errno
import logging
import shlex
import time
from typing import Any

from pyinfra.api import StringCommand
from pyinfra.connectors.ssh import SSHConnector

from agent.core.results import OpResult, Status
from agent.core.steps import Login

# sshd re-executes itself on a reload (SIGHUP): for that moment nothing listens on its
# port, so a connection refused is tried again for this long before it counts as a failure
REFUSED_FOR = 10.0


def prove(host: Any, login: Login, op: OpResult) -> None:
    """After op changed something: a new login, else the undo; op says which."""
    if not isinstance(host.connector, SSHConnector):
        op.diff = "\n".join(x for x in (op.diff, "not proven by a new SSH login: the host is "
                                        "not reached over SSH") if x)
        return
    why = new_login(host, login.confirm)
    if not why:
        op.diff = "\n".join(x for x in (op.diff, "a new SSH login works: kept") if x)
        return
    ok, output = host.run_shell_command(StringCommand(shlex.join(login.undo)),
                                        print_output=False, print_input=False)
    said = "\n".join(output.stdout_lines + output.stderr_lines).strip()
    op.status = Status.FAILED
    op.error = (f"a new SSH login failed after the change ({why}); " +
                ("the previous configuration is back" if ok else
                 f"putting the previous configuration back failed too: {said}"))
    op.diff = "\n".join(x for x in (op.diff, said) if x)


def new_login(host: Any, confirm: tuple[str, ...]) -> str:
    """'' when a fresh SSH connection to the host logs in and runs confirm; else why not."""
    fresh = SSHConnector(host.state, host)
    quiet = logging.NullHandler()  # paramiko's transport thread logs the failure it raises
    paramiko, propagates = logging.getLogger("paramiko"), logging.getLogger("paramiko").propagate
    paramiko.addHandler(quiet)
    paramiko.propagate = False
    try:
        _connect(fresh)
        ok, output = fresh.run_shell_command(StringCommand(shlex.join(confirm)),
                                             print_output=False, print_input=False)
        if not ok:
            return f"it logged in, but {confirm[0]} failed: {' '.join(output.stderr_lines)[:200]}"
        return ""
    except Exception as e:  # pyinfra's ConnectError, paramiko's, an OSError: the login failed
        return f"{type(e).__name__}: {e}".strip()
    finally:
        paramiko.removeHandler(quiet)
        paramiko.propagate = propagates
        client = getattr(fresh, "client", None)
        if client is not None:
            client.close()


def _connect(fresh: SSHConnector) -> None:
    deadline = time.monotonic() + REFUSED_FOR
    while True:
        try:
            fresh.connect()
            return
        except Exception as e:
            if not _refused(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _refused(e: BaseException | None) -> bool:
    """Whether the connection was refused (nothing listened), through pyinfra's and
    paramiko's wrapping exceptions."""
    while e is not None:
        if isinstance(e, ConnectionRefusedError):
            return True
        errors = getattr(e, "errors", None)  # paramiko's NoValidConnectionsError: per address
        if isinstance(errors, dict) and errors and all(
                getattr(x, "errno", None) == errno.ECONNREFUSED for x in errors.values()):
            return True
        e = e.__cause__ or e.__context__
    return False
