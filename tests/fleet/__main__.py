"""python -m tests.fleet [--slot N] up N [--systemd K] | status | reset NAME | down | fault ... | image"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.fleet import faults, image, reaper
from tests.fleet.fleet import Fleet, leftovers, sweep
from tests.fleet.net import FleetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet", description=__doc__)
    parser.add_argument("--slot", type=int, default=1,
                        help="which fleet (1-250): its subnet 10.213.SLOT.0/24 and names oflSLOT*")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start hosts (next to any already running)")
    up.add_argument("count", type=int, nargs="?", default=3)
    up.add_argument("--systemd", type=int, default=0, help="also boot this many systemd hosts")
    sub.add_parser("status", help="list hosts")
    reset = sub.add_parser("reset", help="put a host back to the pristine image")
    reset.add_argument("name")
    sub.add_parser("down", help="tear everything of the slot down")
    sub.add_parser("image", help="build (or find) the cached image and print its path")
    hold = sub.add_parser("hold", help="up, then wait; tear down on exit however it comes")
    hold.add_argument("count", type=int, nargs="?", default=3)
    sub.add_parser("reap", help=argparse.SUPPRESS)
    fault = sub.add_parser("fault", help="inject a fault into a host")
    fault.add_argument("what", choices=["cut", "restore", "kill-sshd", "start-sshd", "crash",
                                        "fill-disk", "free-disk", "delay", "undelay"])
    fault.add_argument("name")
    fault.add_argument("--ms", type=int, default=200, help="latency for delay")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except FleetError as e:
        print(f"fleet: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "image":
        print(image.ensure())
        return 0
    if args.command == "reap":
        reaper.wait_for_owner_then_sweep(args.slot)
        return 0
    if args.command == "down":
        sweep(args.slot)
        left = leftovers(args.slot)
        print("\n".join(left) if left else f"fleet {args.slot}: nothing left")
        return 1 if left else 0
    fleet = Fleet(args.slot)
    if args.command == "up":
        started = time.monotonic()
        added = fleet.up(args.count, systemd=args.systemd)
        print(f"started {', '.join(h.name for h in added)} in {time.monotonic() - started:.1f} s")
        print(f"inventory: {fleet.inventory}")
        return 0
    if args.command == "hold":
        return _hold(fleet, args.count)
    if args.command == "status":
        for row in fleet.status():
            print("  ".join(f"{k}={v}" for k, v in row.items()))
        if not fleet.hosts:
            print(f"fleet {args.slot}: no hosts")
        return 0
    if args.command == "reset":
        started = time.monotonic()
        fleet.reset(args.name)
        print(f"reset {args.name} in {time.monotonic() - started:.2f} s")
        return 0
    return _fault(fleet, args)


def _hold(fleet: Fleet, count: int) -> int:
    watchdog = reaper.Reaper(fleet.slot)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        fleet.up(count)
        print(f"holding fleet {fleet.slot}: {fleet.inventory}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 130
    finally:
        fleet.down()
        watchdog.release()


def _fault(fleet: Fleet, args: argparse.Namespace) -> int:
    name = args.name
    actions = {
        "cut": lambda: faults.cut(fleet, name),
        "restore": lambda: faults.restore(fleet, name),
        "kill-sshd": lambda: faults.kill_sshd(fleet, name),
        "start-sshd": lambda: faults.start_sshd(fleet, name),
        "crash": lambda: faults.crash(fleet, name),
        "fill-disk": lambda: print(f"wrote {faults.fill_disk(fleet, name)} bytes"),
        "free-disk": lambda: faults.free_disk(fleet, name),
        "delay": lambda: faults.delay(fleet, name, args.ms),
        "undelay": lambda: faults.undelay(fleet, name),
    }
    actions[args.what]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
