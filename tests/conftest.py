"""Fixtures shared by every test folder: the real test fleet (tests/fleet)."""

from tests.fleet.fixtures import fleet, fresh_fleet, fresh_host, systemd_host

__all__ = ["fleet", "fresh_fleet", "fresh_host", "systemd_host"]
