"""`opsagent validate`: every problem in the policies and inventory at once; exit 1 if any."""

from __future__ import annotations

from agent.cli.common import Parser, add_arguments, load_plan, report_problems
from agent.errors import Problems


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent validate", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args)
    except Problems as e:
        return report_problems(e)
    steps = sum(len(h.steps) for h in plan.hosts)
    print(f"ok: {len(plan.policies)} policies, {len(plan.hosts)} hosts, {steps} steps")
    return 0
