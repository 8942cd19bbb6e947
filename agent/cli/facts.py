"""`opsagent facts [PATTERN...]`: the facts policies see as `facts.*`, read from each host."""

from __future__ import annotations

import json
from pathlib import Path

from agent.cli.common import Parser, inventory_of, report_problems
from agent.errors import Problem, Problems
from agent.patterns import PatternError


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent facts", description=__doc__)
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="hosts, as --limit takes them (default: all)")
    parser.add_argument("-i", "--inventory", type=Path, help="inventory file, or @local (default: as for "
                        "apply)")
    parser.add_argument("--json", action="store_true", help="one JSON object: host -> facts")
    parser.add_argument("--timeout", type=int, default=10, metavar="SECONDS",
                        help="SSH connect timeout per host (default: 10)")
    args = parser.parse_args(argv)
    try:
        inventory, _ = inventory_of(args)
        hosts = inventory.select(args.patterns or ["all"])
    except PatternError as e:
        return report_problems(Problems([Problem("PATTERN", 0, 0, "", "", str(e))]))
    except Problems as e:
        return report_problems(e)
    from agent import facts

    found = facts.gather(hosts, args.timeout)
    if args.json:
        print(json.dumps({name: value if isinstance(value, dict) else {"error": value}
                          for name, value in found.items()}, indent=2))
    else:
        for name, value in found.items():
            if isinstance(value, str):
                print(f"{name}: {value}")
                continue
            print(f"{name}:")
            for key in facts.NAMES:
                print(f"  {key}: {value[key]}")
    return 0 if all(not isinstance(v, str) for v in found.values()) else 2
