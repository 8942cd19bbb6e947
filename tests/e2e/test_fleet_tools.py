"""The fleet's own tools: reset, faults, and teardown that leaves nothing behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet import Fleet, Host, faults, leftovers
from tests.fleet.fixtures import unavailable

pytestmark = pytest.mark.fleet
REPO = Path(__file__).resolve().parents[2]
SPARE_SLOT = 9  # the session fleet uses another slot


def port_open(host: Host) -> bool:
    try:
        with socket.create_connection((host.address, 22), timeout=2):
            return True
    except OSError:
        return False


def test_reset_puts_the_host_back_to_the_image_with_the_same_identity(fleet: Fleet) -> None:
    assert fleet.ssh("h1", "echo dirty > /etc/motd && mkdir /srv/junk").returncode == 0
    assert fleet.host("h1").path("/srv/junk").is_dir()
    started = time.monotonic()
    fleet.reset("h1")
    took = time.monotonic() - started
    print(f"reset h1 took {took:.2f} s")
    assert not fleet.host("h1").path("/srv/junk").exists()
    assert fleet.host("h1").path("/etc/motd").read_text() != "dirty\n"
    # same host key, so the known_hosts file still holds: strict checking passes
    done = fleet.ssh("h1", "hostname; cat /etc/hostname")
    assert done.stdout == "h1\nh1\n", done.stderr


def test_kill_sshd_refuses_connections_until_started_again(fresh_host: Host, fleet: Fleet) -> None:
    faults.kill_sshd(fleet, fresh_host.name)
    assert not port_open(fresh_host)
    assert fleet.run(fresh_host.name, "echo still up").stdout == "still up\n"
    faults.start_sshd(fleet, fresh_host.name)
    assert fleet.ssh(fresh_host.name, "true").returncode == 0


def test_crash_stops_every_process_and_reset_brings_the_host_back(fresh_host: Host, fleet: Fleet) -> None:
    assert fleet.net.pids(fresh_host.index)
    faults.crash(fleet, fresh_host.name)
    assert fleet.net.pids(fresh_host.index) == []
    assert not port_open(fresh_host)
    fleet.reset(fresh_host.name)
    assert fleet.ssh(fresh_host.name, "true").returncode == 0


def test_fill_disk_makes_writes_fail_until_freed(fresh_host: Host, fleet: Fleet) -> None:
    assert faults.fill_disk(fleet, fresh_host.name) > 0
    full = fleet.ssh(fresh_host.name, "echo x > /srv/new-file")
    assert full.returncode != 0 and "No space left" in full.stderr
    faults.free_disk(fleet, fresh_host.name)
    assert fleet.ssh(fresh_host.name, "echo x > /srv/new-file").returncode == 0


def test_cut_drops_traffic_until_restored(fresh_host: Host, fleet: Fleet) -> None:
    with faults.cut_off(fleet, fresh_host.name):
        assert not port_open(fresh_host)
        assert fleet.ssh("h2", "true").returncode == 0  # the others are untouched
    assert port_open(fresh_host)


def test_delay_adds_latency_to_the_link(fresh_host: Host, fleet: Fleet) -> None:
    def ssh_seconds() -> float:
        started = time.monotonic()
        assert fleet.ssh(fresh_host.name, "true").returncode == 0
        return time.monotonic() - started

    before = min(ssh_seconds() for _ in range(3))
    faults.delay(fleet, fresh_host.name, 300)
    try:
        slow = ssh_seconds()
        # an SSH login takes at least 4 round trips (TCP, key exchange, auth, command)
        assert slow - before >= 4 * 0.3, (before, slow)
        assert min(ssh_seconds() for _ in range(2)) - before < 3  # nothing else broke
    finally:
        faults.undelay(fleet, fresh_host.name)
    assert ssh_seconds() < before + 0.3


def hold(signum: int) -> None:
    """Start a 2-host fleet in a child process, end it with `signum`, wait for the cleanup."""
    child = subprocess.Popen([sys.executable, "-m", "tests.fleet", "--slot", str(SPARE_SLOT), "hold", "2"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("holding fleet"), line + child.communicate()[1]
    made = leftovers(SPARE_SLOT)
    assert any(item.startswith("netns ") for item in made)
    assert any(item.startswith("mount ") for item in made)
    assert any(item.startswith("process ") for item in made)
    child.send_signal(signum)
    child.wait(timeout=60)
    deadline = time.monotonic() + 60  # after SIGKILL the reaper does the work, a moment later
    while leftovers(SPARE_SLOT) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(SPARE_SLOT) == []
    assert f"ofl{SPARE_SLOT}" not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                                     text=True, check=True).stdout
    assert "opsagent-fleet/9" not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["ctrl-c", "sigterm", "sigkill"])
def test_teardown_leaves_nothing_however_the_owner_ends(signum: int) -> None:
    if unavailable():
        pytest.skip(unavailable())
    hold(signum)


def test_fleet_cli_names_a_wrong_host_or_slot_without_a_traceback() -> None:
    cases = ((["--slot", str(SPARE_SLOT), "reset", "h7"], "no host 'h7' in fleet 9 (have: none)"),
             (["--slot", "0", "status"], "slot 0 is out of range 1-250"))
    for args, message in cases:
        done = subprocess.run([sys.executable, "-m", "tests.fleet", *args], cwd=REPO,
                              capture_output=True, text=True, check=False)
        assert (done.returncode, done.stderr) == (1, f"fleet: {message}\n")


def test_a_host_cannot_change_this_machines_kernel_settings(fleet: Fleet) -> None:
    ours = Path("/proc/sys/vm/swappiness").read_text()
    wanted = "13" if ours.strip() != "13" else "14"
    done = fleet.run("h1", f"echo {wanted} > /proc/sys/vm/swappiness", check=False)
    assert done.returncode != 0 and "Read-only file system" in done.stderr
    assert fleet.run("h1", "echo s > /proc/sysrq-trigger", check=False).returncode != 0
    assert fleet.run("h1", "echo 1 > /sys/kernel/mm/ksm/run", check=False).returncode != 0
    assert Path("/proc/sys/vm/swappiness").read_text() == ours
    # the host's own network namespace stays the host's to set
    ours_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    other = "0" if ours_forward.strip() == "1" else "1"
    done = fleet.run("h1", f"echo {other} > /proc/sys/net/ipv4/ip_forward && "
                           "cat /proc/sys/net/ipv4/ip_forward")
    assert done.stdout == f"{other}\n"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == ours_forward


def test_a_sweep_goes_on_past_a_mount_already_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount listed, then gone with another before its turn (a lazy unmount of the one
    below it): the sweep goes on and removes the rest. It used to stop there, leaving a
    half-removed fleet that made the next run's tests fail."""
    from tests.fleet import fleet as fleet_module

    if unavailable():
        pytest.skip(unavailable())
    top = fleet_module.RUN_ROOT / str(SPARE_SLOT)
    (top / "hosts").mkdir(parents=True, exist_ok=True)
    listed = iter([[str(top / "hosts" / "h1" / "merged")]])
    monkeypatch.setattr(fleet_module, "_mounts_under", lambda _: next(listed, []))
    fleet_module.sweep(SPARE_SLOT)
    assert not top.exists() and leftovers(SPARE_SLOT) == []
