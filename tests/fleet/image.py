"""The fleet's Debian image: built once with mmdebstrap, cached outside the checkout.

The cache key is the hash of the suite, the package list and the build recipe, so a
changed list builds a new image beside the old one. Builds take a file lock and
finish with a rename, so parallel runs and interrupted builds never see half an image.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

PACKAGES = (
    "openssh-server", "python3", "iproute2", "sudo", "ca-certificates", "procps", "curl",
    "git", "borgbackup", "nginx-light", "gitolite3", "needrestart",
    # only needed by hosts booted with systemd-nspawn; inert on the others
    "systemd", "systemd-sysv", "dbus",
)
RECIPE = "2"  # bump when build() changes what ends up in the image

SSHD_CONFIG = """\
# written by the opsagent test fleet
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""


def cache_root() -> Path:
    return Path(os.environ.get("OPSAGENT_FLEET_CACHE", "/var/cache/opsagent-fleet"))


def suite() -> str:
    text = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    return match.group(1) if match else "bookworm"


def key(packages: tuple[str, ...] = PACKAGES) -> str:
    text = "\n".join([RECIPE, suite(), *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mirrors() -> tuple[str, str]:
    """The Debian and security mirror URIs of this machine's own apt sources."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    texts += [p.read_text() for p in Path("/etc/apt").glob("sources.list") if p.exists()]
    uris = re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", "\n".join(texts), re.M)
    main = next((u for u in uris if u.rstrip("/").endswith("/debian")), "http://deb.debian.org/debian")
    security = next((u for u in uris if u.rstrip("/").endswith("/debian-security")),
                    "http://deb.debian.org/debian-security")
    return main, security


def path(packages: tuple[str, ...] = PACKAGES) -> Path:
    return cache_root() / key(packages) / "rootfs"


def ensure(packages: tuple[str, ...] = PACKAGES) -> Path:
    """The root filesystem for these packages, built first if it is not cached yet."""
    rootfs = path(packages)
    if rootfs.is_dir():
        return rootfs
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with open(rootfs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rootfs.is_dir():  # another process may have built it while we waited
            build(rootfs, packages)
    return rootfs


def build(rootfs: Path, packages: tuple[str, ...]) -> None:
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    work = rootfs.with_name("rootfs.building")
    shutil.rmtree(work, ignore_errors=True)
    main, security = mirrors()
    name = suite()
    log = rootfs.parent / "build.log"
    with open(log, "w") as out:
        done = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(packages), name, str(work),
             f"deb {main} {name} main", f"deb {security} {name}-security main"],
            stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError(f"mmdebstrap failed (rc {done.returncode}); see {log}")
    _finish(work)
    work.rename(rootfs)


def _finish(root: Path) -> None:
    """Make the image neutral: no host keys or machine id of its own, sshd set up for keys."""
    for key_file in (root / "etc/ssh").glob("ssh_host_*"):
        key_file.unlink()
    (root / "etc/ssh/sshd_config.d/fleet.conf").write_text(SSHD_CONFIG)
    (root / "etc/machine-id").write_text("")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
