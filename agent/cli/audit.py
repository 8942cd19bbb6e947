"""`opsagent audit verify | log`: check the audit log's hash chain, or list its entries."""

from __future__ import annotations

import time

from agent.cli.common import Parser, add_state_dir, open_store
from agent.state import audit


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent audit", description=__doc__)
    add_state_dir(parser)
    parser.add_argument("action", choices=["verify", "log"])
    parser.add_argument("-n", "--limit", type=int, default=50, help="entries for log (default: 50)")
    args = parser.parse_args(argv)
    with open_store(args) as store:
        if args.action == "log":
            for seq, at, who, host, policy, step, status in store.db.execute(
                "SELECT seq, at, who, host, policy, step, status FROM audit ORDER BY seq DESC LIMIT ?",
                (args.limit,),
            ):
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
                print(f"{seq:>6}  {when}  {host}  {policy} > {step}: {status}  (by {who})")
            return 0
        count, problems = audit.verify(store.db)
        seq, digest = audit.head(store.db)
    for problem in problems:
        print(f"audit: {problem}")
    if problems:
        print(f"audit log {store.path}: {len(problems)} problem(s) in {count} entries")
        return 1
    print(f"audit log {store.path}: {count} entries, chain intact; head {seq} {digest}")
    return 0
