"""`opsagent COMMAND ...`: one module per subcommand, each with main(argv) -> int.

Subcommand modules are imported only when used, so `opsagent --help` and
`opsagent validate` start without loading pyinfra's execution machinery.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
from typing import NoReturn

from agent import __version__

COMMANDS = {
    "validate": ("agent.cli.validate", "check policies and inventory; print every problem"),
    "plan": ("agent.cli.plan", "show what would change, per host and policy (check mode)"),
    "apply": ("agent.cli.apply", "converge hosts to the policies now"),
    "explain": ("agent.cli.explain", "describe a policy kind's fields"),
    "facts": ("agent.cli.facts", "show the facts policies see as facts.* (read from each host)"),
    "install-service": ("agent.cli.install_service", "write systemd units for the daemon or a timer"),
    "status": ("agent.cli.status", "per policy and host: last run, result, compliance, next run"),
    "report": ("agent.cli.report", "compliance, changes and failures over a period (html|json|junit)"),
    "history": ("agent.cli.history", "list recent runs and what they did per host"),
    "audit": ("agent.cli.audit", "verify the audit log's hash chain, or list it"),
    "daemon": ("agent.cli.daemon", "converge policies on their schedules; serve /metrics"),
    "run": ("agent.cli.run", "run a playbook: a one-shot procedure such as playbooks/restore.yml"),
    "deploy": ("agent.cli.deploy", "start, watch, pause, promote, abort or roll back a deploy"),
    "warm": ("agent.cli.warm", "keep pyinfra and the kinds imported, so one-shot commands start "
                               "at once"),
}
# Commands that run pyinfra over many hosts: gevent must patch the process first,
# as pyinfra's own CLI does, or SSH hosts are worked one after another.
PARALLEL = {"plan", "apply", "run", "facts", "deploy"}  # and every kind's actions
# Commands a warm server (`opsagent warm`) runs when one is up: those and validate.
WARM = PARALLEL | {"validate"}


def usage() -> str:
    # a kind's actions are commands too (from the registry, which loads pyinfra: not here)
    lines = [*(f"  {name:<17}{text}\n" for name, (_, text) in COMMANDS.items()),
             f"  {'KIND VERB':<17}a kind's action on a policy's hosts, e.g. backup list, backup "
             "restore (opsagent explain KIND lists them)\n"]
    return ("usage: opsagent [--version] COMMAND [ARGS...]\n\ncommands:\n" + "".join(lines)
            + "\nRun `opsagent COMMAND --help` for a command's options.\n")


def kind_names() -> set[str]:
    """The kinds' names, from their package's folder: importing the kinds would load
    pyinfra, which gevent must patch first, and a typo needs neither."""
    spec = importlib.util.find_spec("agent.kinds")
    assert spec is not None and spec.submodule_search_locations is not None
    return {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if args else 1
    if args[0] == "--version":
        print(f"opsagent {__version__}")
        return 0
    command = args[0]
    if command not in COMMANDS and command not in kind_names():
        sys.stderr.write(f"opsagent: unknown command {command!r}\n\n{usage()}")
        return 1
    if command in WARM or command not in COMMANDS:  # a kind's action
        from agent.warm.client import handoff

        handed = handoff(args)
        if handed is not None:
            return handed
    if command in PARALLEL or command not in COMMANDS:  # a kind's action
        from agent import patching

        patching.patch_all()
    from agent.state.errors import StateError

    try:
        if command in COMMANDS:
            code: int = importlib.import_module(COMMANDS[command][0]).main(args[1:])
        else:
            from agent.kinds import KINDS

            kind = KINDS.get(command)
            if kind is None or not kind.actions:
                sys.stderr.write(f"opsagent: unknown command {command!r}\n\n{usage()}")
                return 1
            from agent.cli import kind as kind_command

            code = kind_command.main(kind, args[1:])
    except StateError as e:
        sys.stderr.write(f"opsagent: {e}\n")
        return 1
    return code


def run() -> None:
    leave(exit_code())


def leave(code: int) -> NoReturn:
    """End the process with code, skipping the interpreter's teardown.

    Python's teardown frees every object of pyinfra, gevent, paramiko and pydantic one by
    one: 0.1-0.2 s after a run, a sixth of a converged run of one host, for nothing a
    finished command needs. What the command kept is in place before main returns (the
    store and the audit log are closed by then); here threads still working are waited
    for, what is buffered is written, and exit handlers (temporary folders, logging) run,
    as they would at a normal exit.
    """
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader went away; stdout closed
        code = code or 1
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def exit_code(argv: list[str] | None = None) -> int:
    """main(), with an interrupt or a reader gone away (e.g. `| head`) as exit codes."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("opsagent: interrupted\n")
        return 130
    except BrokenPipeError:  # say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
