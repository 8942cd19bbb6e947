"""Real, isolated Debian hosts on this machine for end-to-end tests (see tests/README.md)."""

from tests.fleet.fleet import Fleet, leftovers, sweep
from tests.fleet.host import Host
from tests.fleet.net import FleetError

__all__ = ["Fleet", "FleetError", "Host", "leftovers", "sweep"]
