"""`opsagent audit verify | log`: check the audit log's hash chain, or list its entries."""

from __future__ import annotations

import argparse
import sys
import time

from agent.cli.common import Parser, add_state_dir, open_store
from agent.cli.shown import shown
from agent.state import audit
from agent.state.store import state_dir


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent audit", description=__doc__)
    add_state_dir(parser)
    parser.add_argument("action", choices=["verify", "log"])
    parser.add_argument("-n", "--limit", type=int, default=50, help="entries for log (default: 50)")
    parser.add_argument("--expect-head", type=_head, metavar="SEQ:HASH",
                        help="verify: the chain must hold this head, as an earlier run printed "
                             "it and you kept it elsewhere (it may have grown since)")
    args = parser.parse_args(argv)
    path = state_dir(args.state_dir) / "state.db"
    if not path.is_file():  # never made anew here: a missing store is not an intact one
        print(f"opsagent audit: no state store at {path}", file=sys.stderr)
        return 1
    with open_store(args) as store:
        damaged = store.damage() if args.action == "verify" else ""
        if damaged:
            print(f"audit log {store.path}: the store is damaged ({damaged})")
            return 1
        if args.action == "log":
            for seq, at, who, host, policy, step, status, diff in store.db.execute(
                "SELECT seq, at, who, host, policy, step, status, diff FROM audit"
                " ORDER BY seq DESC LIMIT ?", (args.limit,),
            ):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
                sealed = f" {diff}" if status == "evidence" else ""  # the digest it holds
                print(shown(f"{seq:>6}  {when}  {host}  {policy} > {step}: {status}{sealed}"
                            f"  (by {who})"))
            return 0
        count, problems = audit.verify(store.db)
        if args.expect_head is not None:
            problems += [p for p in [audit.holds(store.db, args.expect_head)] if p]
        seq, digest = audit.head(store.db)
    for problem in problems:
        print(f"audit: {problem}")
    if problems:
        print(f"audit log {store.path}: {len(problems)} problem(s) in {count} entries")
        return 1
    held = f", holds {args.expect_head[0]}" if args.expect_head is not None else ""
    print(f"audit log {store.path}: {count} entries, chain intact{held}; head {seq}:{digest}")
    return 0


def _head(text: str) -> tuple[int, str]:
    try:
        return audit.parse_head(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
