"""`opsagent history`: the latest runs, newest first, with what each did per host."""

from __future__ import annotations

import json
import time

from agent.cli.common import Parser, add_state_dir, open_store
from agent.cli.shown import shown as escaped


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent history", description=__doc__)
    add_state_dir(parser)
    parser.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default: 20)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args(argv)
    with open_store(args) as store:
        runs = [(run, store.host_counts(run.id)) for run in store.runs(args.limit)]
    if args.json:
        print(json.dumps([{**vars(run), "hosts": [{"host": h, "unreachable": u, "counts": c,
                                                    "error": e} for h, u, c, e in hosts]}
                          for run, hosts in runs], indent=2))
        return 0
    if not runs:
        print("no runs recorded yet")
    for run, hosts in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        outcome = "FAILED" if run.failed else "ok"
        print(f"#{run.id}  {when}  {run.command:<5}  {outcome:<6}  {run.finished - run.started:6.2f}s"
              f"  by {escaped(run.who)}  ({escaped(run.source)})")
        for host, unreachable, counts, error in hosts:
            shown = "  ".join(f"{k}={v}" for k, v in counts.items() if v)
            print(escaped(f"    {host}: {'unreachable  ' if unreachable else ''}"
                          f"{shown or 'nothing to do'}{'  ' + error if error else ''}"))
    return 0
