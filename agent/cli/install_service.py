"""`opsagent install-service`: write the systemd units for the daemon, or for one-shot runs
on a timer, rendered from the unit templates shipped in the package (agent/units/).
Prints the systemctl commands to run next."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from agent.cli import unit_fields as field
from agent.cli.common import Parser

UNITS = {"daemon": ("opsagent.service",), "timer": ("opsagent-apply.service", "opsagent-apply.timer")}
UNIT_TEMPLATES = Path(__file__).resolve().parents[1] / "units"  # package data


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent install-service", description=__doc__)
    parser.add_argument("--mode", choices=tuple(UNITS), default="daemon",
                        help="daemon: opsagent.service; timer: opsagent-apply.service + .timer")
    parser.add_argument("--dest", type=Path, default=Path("/etc/systemd/system"),
                        help="where units are written (default: /etc/systemd/system)")
    parser.add_argument("--print", dest="show", action="store_true",
                        help="print the units instead of writing them")
    parser.add_argument("--opsagent", help="the opsagent command (default: this one)")
    parser.add_argument("--config", default="/etc/opsagent/agent.yml", help="daemon: agent.yml")
    parser.add_argument("--push-only", action="store_true",
                        help="daemon: this machine is never a target; sandbox it read-only")
    parser.add_argument("--user", default="opsagent", help="daemon with --push-only: run as")
    parser.add_argument("--stop-timeout", type=int, default=60,
                        help="daemon: seconds runs get to end on stop (agent.yml stop_timeout)")
    parser.add_argument("--policies", default="/etc/opsagent/policies", help="timer: policies")
    parser.add_argument("--inventory", default="/etc/opsagent/inventory.yml", help="timer")
    parser.add_argument("--templates", default="/etc/opsagent/templates",
                        help="timer: the policies' template folder")
    parser.add_argument("--textfile-dir", default="/var/lib/prometheus/node-exporter",
                        help="timer: node_exporter's textfile folder")
    parser.add_argument("--on-calendar", default="hourly", help="timer: systemd OnCalendar=")
    parser.add_argument("--splay", default="5min", help="timer: RandomizedDelaySec=")
    parser.add_argument("--timeout", type=int, default=3600, help="timer: seconds a run may take")
    args = parser.parse_args(argv)
    try:
        values, program = _values(args)
    except (field.UnitFieldError, ValueError) as e:
        parser.error(str(e))
    for path in field.code_paths(program):
        for why in field.writable_by_others(path):
            print(f"opsagent install-service: warning: {why}: whoever can write it runs code "
                  f"as {args.user if args.push_only else 'root'} when the service starts "
                  "(install opsagent where only root can write, e.g. pip install as root "
                  "into /opt)", file=sys.stderr)
    rendered = {name: render(name, values) for name in UNITS[args.mode]}
    if args.show:
        for name, text in rendered.items():
            print(f"# --- {name}\n{text}", end="")
        return 0
    if not args.dest.is_dir():
        parser.error(f"--dest {args.dest}: no such directory")
    for name, text in rendered.items():
        tmp = args.dest / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(args.dest / name)
        print(f"wrote {args.dest / name}")
    first = "opsagent.service" if args.mode == "daemon" else "opsagent-apply.timer"
    print(f"next: systemctl daemon-reload && systemctl enable --now {first}")
    return 0


def _values(args: argparse.Namespace) -> tuple[dict[str, object], list[str]]:
    """The units' fields, each checked and escaped; and the opsagent command's words."""
    program = shlex.split(args.opsagent) if args.opsagent else _this_command()
    if not program:
        raise field.UnitFieldError("--opsagent: empty")
    field.absolute_path("--opsagent", program[0])
    config = field.absolute_path("--config", args.config)
    paths = {name: field.absolute_path(f"--{name.replace('_', '-')}", getattr(args, name))
             for name in ("policies", "inventory", "templates", "textfile_dir")}
    daemon = field.command_line("--opsagent", [*program, "daemon", "--config", config])
    apply = field.command_line("--opsagent", [
        *program, "apply", paths["policies"], "--inventory", paths["inventory"], "--templates",
        paths["templates"], "--textfile-dir", paths["textfile_dir"]])
    return {
        "daemon_command": daemon, "apply_command": apply, "push_only": args.push_only,
        "user": field.user("--user", args.user), "stop_seconds": args.stop_timeout + 30,
        "on_calendar": field.calendar("--on-calendar", args.on_calendar),
        "splay": field.timespan("--splay", args.splay), "timeout_seconds": args.timeout,
    }, program


def render(name: str, values: dict[str, object]) -> str:
    env = Environment(loader=FileSystemLoader(UNIT_TEMPLATES), trim_blocks=True,
                      lstrip_blocks=True, undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(f"{name}.j2").render(values)


def _this_command() -> list[str]:
    """The opsagent that is running: its script, else the one on PATH, else this Python."""
    running = Path(sys.argv[0])
    if running.name == "opsagent" and running.is_file():
        return [str(running.resolve())]
    found = shutil.which("opsagent")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "agent"]
