"""`opsagent report`: compliance per host and policy, where the time went (the slowest
policies and operations against the period before), and the period's changes and failures,
as HTML, JSON or JUnit XML."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.cli.common import Parser, add_state_dir, open_store
from agent.core.durations import parse_duration


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent report", description=__doc__)
    parser.add_argument("--format", choices=("html", "json", "junit"), default="html")
    parser.add_argument("--since", type=_duration, default=7 * 86400, metavar="DURATION",
                        help="the period, back from now, e.g. 24h, 7d (default: 7d)")
    parser.add_argument("--top", type=_positive, default=10, metavar="N",
                        help="how many of the slowest policies and operations to list (default: 10)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    add_state_dir(parser)
    args = parser.parse_args(argv)

    from agent.report.data import collect
    from agent.report.render import to_html, to_json, to_junit

    with open_store(args) as store:
        report = collect(store, time.time() - args.since, args.top)
    text = {"html": to_html, "json": to_json, "junit": to_junit}[args.format](report)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return int(text)
