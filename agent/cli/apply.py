"""`opsagent apply`: converge hosts now and print a recap; exit 0 converged, 2 failures.

Hosts are locked in the state directory while they are converged, so this and the
daemon never work on one host at once. SIGTERM or SIGINT (Ctrl-C) lets the operations
under way end, skips the rest, records the run and prints the recap; a second one ends
the process at once. After SIGINT the exit code is 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from agent.cli.common import (
    Parser,
    add_arguments,
    add_state_dir,
    inventory_line,
    load_plan,
    open_store,
    report_problems,
)
from agent.cli.output import Printer, exit_code, to_json
from agent.errors import Problems


def main(argv: list[str], check: bool = False) -> int:
    stopping = on_stop()  # first: a SIGTERM or Ctrl-C from here on stops the run cleanly
    prog = "opsagent plan" if check else "opsagent apply"
    parser = Parser(prog=prog, description=__doc__)
    add_arguments(parser)
    parser.add_argument("--diff", action="store_true", help="show file diffs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    parser.add_argument("--timeout", type=_seconds, default=10, metavar="SECONDS",
                        help="a host that does not connect or answer within this is unreachable "
                             "(default: 10)")
    add_state_dir(parser)
    if not check:
        parser.add_argument("--check", action="store_true", help="check mode: same as plan")
        parser.add_argument("--lock-wait", type=_seconds_or_zero, default=300, metavar="SECONDS",
                            help="wait this long for hosts another run is converging (default: 300)")
        parser.add_argument("--audit-syslog", metavar="SOCKET",
                            help="also send each audit entry to this syslog socket as it is "
                                 "kept, e.g. /dev/log (default: opsagent.yml's audit_syslog)")
        parser.add_argument("--textfile-dir", metavar="DIR",
                            help="also write the metrics to DIR/opsagent.prom, for node_exporter's "
                                 "textfile collector")
    args = parser.parse_args(argv)
    check = check or args.check
    textfile_dir = getattr(args, "textfile_dir", None)
    if textfile_dir and not os.path.isdir(textfile_dir):
        parser.error(f"--textfile-dir {textfile_dir}: no such directory")
    try:
        plan = load_plan(args, read_facts=True)
    except Problems as e:
        return report_problems(e)

    from agent import runs

    printer = Printer(diff=args.diff)
    if not args.json:
        print(inventory_line(args, plan), flush=True)
    command = "plan" if check else "apply"
    with open_store(args) as store:
        before = store.audit_head()
        done = runs.run(plan, store, command, check=check, diff=args.diff,
                        connect_timeout=args.timeout, lock_wait=getattr(args, "lock_wait", 0),
                        on_result=None if args.json else printer.progress,
                        on_wave=None if args.json else printer.line, stop=stopping.asked,
                        audit_syslog=getattr(args, "audit_syslog", None))
    result = done.result
    if not args.json:
        printer.recap(result)
    if done.error:
        if args.json:
            print(to_json(result))
        print(f"opsagent: could not record this run: {done.error} (it is noted as begun, and "
              "will be recorded as interrupted)", file=sys.stderr)
        return 2
    if textfile_dir:
        from agent.metrics import write_textfile

        try:
            write_textfile(store.path, textfile_dir)
        except OSError as e:
            print(f"opsagent: the run is recorded, but the textfile could not be written: {e}",
                  file=sys.stderr)
            return 2
    head = done.head
    if args.json:
        print(to_json(result, audit_head=head))
    elif head is not None and head != before:  # to keep elsewhere, for audit verify --expect-head
        added = head[0] - before[0]
        print(f"audit log: {added} new entr{'y' if added == 1 else 'ies'}; head "
              f"{head[0]}:{head[1]}")
    return 130 if signal.SIGINT in stopping.signals else exit_code(result)


class Stop:
    """Signals received; the engine asks asked() before each operation."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def asked(self) -> bool:
        return bool(self.signals)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signals:  # the second one ends us at once
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signals.append(signum)
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        os.write(2, f"opsagent: {name}: stopping after the operations under way; the run is "
                    f"recorded ({name} again ends at once)\n".encode())


def on_stop() -> Stop:
    stop = Stop()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    return stop


def _seconds(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds from 1 to 3600")
    return int(text)


def _seconds_or_zero(text: str) -> int:
    if not text.isdigit() or int(text) > 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds from 0 to 86400")
    return int(text)
