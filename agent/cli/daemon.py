"""`opsagent daemon`: converge policies on their schedules, serve /metrics and /healthz.

SIGHUP (or a change to the policy files) reloads; a broken set is reported and the last
good one keeps running. SIGTERM lets the operations under way end, then exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.cli.common import Parser, add_state_dir, report_problems
from agent.config import AgentConfig, Pull, load_config
from agent.errors import Problems
from agent.state.store import state_dir


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent daemon", description=__doc__)
    parser.add_argument("-c", "--config", type=Path,
                        help="agent.yml (default: /etc/opsagent/agent.yml if it exists, else "
                             "the built-in defaults: policies/, @local, templates/)")
    parser.add_argument("--pull", metavar="GIT_URL[#BRANCH]",
                        help="fetch policies from this repository before each cycle and "
                             "converge @local (overrides pull: in agent.yml)")
    parser.add_argument("--listen", metavar="HOST:PORT", help="overrides listen: in agent.yml")
    add_state_dir(parser)
    args = parser.parse_args(argv)
    path = args.config or (Path("/etc/opsagent/agent.yml")
                           if Path("/etc/opsagent/agent.yml").is_file() else None)
    try:
        config = load_config(path) if path else AgentConfig(inventory=_default_inventory())
        overrides: dict[str, object] = {}
        if args.pull:
            kept = config.pull.model_dump(exclude_none=True) if config.pull else {}
            overrides["pull"] = Pull.model_validate({**kept, "url": args.pull})
        if args.listen is not None:
            overrides["listen"] = AgentConfig.model_validate({"listen": args.listen}).listen
        config = config.model_copy(update=overrides)
    except Problems as e:
        return report_problems(e)
    except ValueError as e:  # a bad --pull or --listen: pydantic's error, worded
        from pydantic import ValidationError

        if isinstance(e, ValidationError):
            from agent.policy.messages import describe

            err = e.errors()[0]
            option = "pull" if err["loc"][0] == "url" else err["loc"][0]
            print(f"opsagent daemon: --{option}: {describe(err)}", file=sys.stderr)
            return 1
        raise

    from agent.daemon.logs import setup
    from agent.daemon.loop import Daemon

    setup(config.log_format)
    directory = state_dir(args.state_dir or config.state_dir)
    cwd = path.parent if path else Path.cwd()
    return Daemon(config, directory, cwd.resolve()).run()


def _default_inventory() -> str:
    """Without agent.yml, the same inventory as `opsagent apply` without -i."""
    from agent.cli.common import DEFAULT_INVENTORY

    return str(DEFAULT_INVENTORY) if DEFAULT_INVENTORY.is_file() else "@local"
