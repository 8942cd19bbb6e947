"""The security host program's readers: what the host says, each read once per run
and shared by every check that needs it (sshd -T, dpkg's status, /proc, the account
files). Standard library only: this runs on the host with its python3.

Each read is kept with its evidence: what was read (a command or a file), its exit code
and the sha256 of what it gave.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import selectors
import signal
import stat
import subprocess
import time
from typing import Any

Data = dict[str, Any]
READS: dict[str, Any] = {}  # what each read gave, by what was read
EVIDENCE: dict[str, Data] = {}  # by what was read: {"read", "exit", "sha256"}
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
LIMIT = 16 << 20  # bytes of a file or of a command's output that are read
STATES = ("enabled", "enabled-runtime", "linked", "linked-runtime", "alias", "masked",
          "masked-runtime", "static", "indirect", "disabled", "generated", "transient", "bad")


def noted(what: str, code: int, text: str) -> None:
    EVIDENCE[what] = {"read": what, "exit": code,
                      "sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()}


def run(argv: list[str], timeout: float = 30) -> tuple[int, str]:
    """(exit code, output, at most LIMIT bytes of it); 127 when the program is not there,
    124 when it took too long (it is killed, as one that keeps writing past LIMIT is)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={"PATH": PATH, "LC_ALL": "C"},
                                start_new_session=True)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not installed"
    assert proc.stdout is not None
    out, deadline, late = b"", time.monotonic() + timeout, False
    with selectors.DefaultSelector() as waiting:
        waiting.register(proc.stdout, selectors.EVENT_READ)
        while len(out) < LIMIT:
            left = deadline - time.monotonic()
            if left <= 0 or not waiting.select(left):
                late = True
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    if late or len(out) >= LIMIT:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.stdout.close()
    code = proc.wait()
    if late:
        return 124, f"timed out after {timeout:g} s"
    if len(out) >= LIMIT:
        return 124, f"wrote more than {LIMIT >> 20} MiB: stopped"
    return code, out.decode("utf-8", "replace")


def text_of(path: str) -> str | None:
    """A regular file's text, its first LIMIT bytes (None: not there, not readable or not
    a regular file: /dev/zero would never end), noted as evidence."""
    key = f"file {path}"
    if key not in READS:
        try:
            with open(path, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise OSError(0, "not a regular file")
                data = b""  # in blocks: /proc refuses one read as large as LIMIT
                while len(data) < LIMIT:
                    block = f.read(65536)
                    if not block:
                        break
                    data += block
                READS[key] = data[:LIMIT].decode("utf-8", "replace")
            noted(key, 0, READS[key])
        except OSError as e:
            READS[key] = None
            noted(key, 1, e.strerror or "")
    value: str | None = READS[key]
    return value


def sshd() -> tuple[dict[str, list[str]] | None, str]:
    """sshd's effective settings (keywords lower-case: their values), or None and why."""
    if "sshd -T" not in READS:
        if not os.path.exists("/usr/sbin/sshd"):
            READS["sshd -T"] = (None, "sshd is not installed")
        else:
            if not os.path.isdir("/run/sshd"):  # sshd -T insists on it (systemd makes it)
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            code, out = run(["/usr/sbin/sshd", "-T"])
            noted("sshd -T", code, out)
            settings: dict[str, list[str]] = {}
            for line in out.splitlines():
                key, _, value = line.partition(" ")
                settings.setdefault(key.lower(), []).append(value.strip())
            READS["sshd -T"] = (settings, "") if code == 0 else (None, _last(out))
    found: tuple[dict[str, list[str]] | None, str] = READS["sshd -T"]
    return found


def sysctl(key: str) -> str | None:
    """A kernel parameter now (whitespace as sysctl prints it), None when this kernel lacks it."""
    path = "/proc/sys/" + key.replace(".", "/")
    text = text_of(path)
    return None if text is None else " ".join(text.split())


def sysctl_files() -> dict[str, tuple[str, str]]:
    """What the next boot sets: key: (value, the file that sets it), in `sysctl --system`'s
    order (by file name across its folders, the first folder's file of a name winning;
    /etc/sysctl.conf last), a later setting winning."""
    if "sysctl files" not in READS:
        chosen: dict[str, str] = {}
        for folder in ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d",
                       "/usr/lib/sysctl.d", "/lib/sysctl.d"):
            for path in sorted(glob.glob(f"{folder}/*.conf")):
                chosen.setdefault(os.path.basename(path), path)
        found: dict[str, tuple[str, str]] = {}
        for path in [chosen[name] for name in sorted(chosen)] + ["/etc/sysctl.conf"]:
            for line in (text_of(path) or "").splitlines():
                line = line.strip()
                if not line or line.startswith(("#", ";")) or "=" not in line:
                    continue
                key, _, value = line.lstrip("-").partition("=")
                found[key.strip().replace("/", ".")] = (" ".join(value.split()), path)
        READS["sysctl files"] = found
    files: dict[str, tuple[str, str]] = READS["sysctl files"]
    return files


def modules() -> tuple[set[str], dict[str, str]]:
    """(the loaded modules, how modprobe.d treats modules: 'install CMD' or 'blacklist')."""
    if "modules" not in READS:
        loaded = {line.split()[0].replace("-", "_")
                  for line in (text_of("/proc/modules") or "").splitlines() if line.strip()}
        rules: dict[str, str] = {}
        for folder in ("/etc/modprobe.d", "/run/modprobe.d", "/usr/lib/modprobe.d",
                       "/lib/modprobe.d"):
            for path in sorted(glob.glob(f"{folder}/*.conf")):
                for line in (text_of(path) or "").splitlines():
                    words = line.split()
                    if len(words) >= 3 and words[0] == "install":
                        rules[words[1].replace("-", "_")] = "install " + " ".join(words[2:])
                    elif len(words) == 2 and words[0] == "blacklist":
                        rules.setdefault(words[1].replace("-", "_"), "blacklist")
        READS["modules"] = (loaded, rules)
    found: tuple[set[str], dict[str, str]] = READS["modules"]
    return found


def packages() -> dict[str, str] | None:
    """Installed packages: their versions; None where dpkg is not there."""
    key = "dpkg-query -W"
    if key not in READS:
        code, out = run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Version}\n"])
        noted(key, code, out)
        installed = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].startswith(("ii", "hi")):
                installed[parts[0]] = parts[2]
        READS[key] = installed if code == 0 else None
    found: dict[str, str] | None = READS[key]
    return found


def version_holds(version: str, wanted: str) -> bool:
    """Whether the version meets the comparison ('>= 1:9.2p1-2'), as dpkg compares."""
    found = re.match(r"^(<=|>=|<|>|=)\s*(\S+)$", wanted)
    if found is None:
        return False
    names = {"<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">": "gt"}
    code, _ = run(["dpkg", "--compare-versions", version, names[found[1]], found[2]])
    return code == 0


def unit(name: str) -> tuple[str, str]:
    """(systemctl is-enabled's word, is-active's word) for the unit; is-active says
    'no systemd' on a host that systemd does not run."""
    name = name if "." in name else name + ".service"
    key = f"systemctl {name}"
    if key not in READS:
        code, enabled = run(["systemctl", "is-enabled", name])
        noted(f"systemctl is-enabled {name}", code, enabled)
        word = (enabled.split() or [""])[0]
        enabled = "no systemctl" if code == 127 else word if word in STATES else "not-found"
        if os.path.isdir("/run/systemd/system"):
            code, active = run(["systemctl", "is-active", name])
            noted(f"systemctl is-active {name}", code, active)
            active = (active.split() or ["unknown"])[0]
        else:
            active = "no systemd"
        READS[key] = (enabled, active)
    found: tuple[str, str] = READS[key]
    return found


def table(path: str) -> list[list[str]]:
    """The rows of a colon-separated file (/etc/passwd, /etc/shadow, /etc/group)."""
    return [line.split(":") for line in (text_of(path) or "").splitlines()
            if line and not line.startswith("#")]


def mounts() -> dict[str, list[str]]:
    """Mount point: its options (the last mount on a point is the one seen)."""
    found: dict[str, list[str]] = {}
    for line in (text_of("/proc/self/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            point = parts[1].replace("\\040", " ")
            found[point] = parts[3].split(",")
    return found


def listening(protocol: str) -> list[tuple[str, int]]:
    """(local address in hex, port) of every listening socket of the protocol."""
    state = "0A" if protocol == "tcp" else "07"
    found = []
    for name in (protocol, protocol + "6"):
        for line in (text_of(f"/proc/net/{name}") or "").splitlines()[1:]:
            parts = line.split()
            if len(parts) > 3 and parts[3] == state:
                address, _, port = parts[1].partition(":")
                found.append((address, int(port, 16)))
    return found


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
