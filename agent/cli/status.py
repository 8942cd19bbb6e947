"""`opsagent status`: per policy and host, the last run, its result, compliance and the
daemon's next run."""

from __future__ import annotations

import json
import time

from agent.cli.common import Parser, add_state_dir, open_store
from agent.cli.shown import shown
from agent.state.locks import daemon_holder
from agent.state.store import state_dir

COLUMNS = ("policy", "host", "last run", "result", "compliant", "drift", "next run")


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent status", description=__doc__)
    add_state_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    with open_store(args) as store:
        rows = store.status()
    daemon = daemon_holder(state_dir(args.state_dir))
    if daemon is None:  # next runs are the daemon's plan: none without a daemon
        for row in rows:
            row.next_run = None
    if args.json:
        print(json.dumps({"daemon": daemon, "policies": [vars(r) for r in rows]}, indent=2))
        return 0
    print(f"daemon: {'running, ' + daemon if daemon else 'not running'}")
    if not rows:
        print("no runs recorded yet")
        return 0
    table = [COLUMNS] + [
        (r.policy, shown(r.host), _when(r.finished), r.result, "yes" if r.compliant else "no",
         str(r.drift), _when(r.next_run) if r.next_run else "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
