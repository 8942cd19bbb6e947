"""The sshd fix, run on the host: the settings of every control's sshd fix as one drop-in
read before the rest of sshd_config (so it wins), never a lockout.

apply: when the drop-in differs, save what was there, write the new one, check it with
`sshd -t` (a host key it cannot load, only a warning to sshd, refuses the change too),
reload sshd; any failure puts the old file back (and reloads) at once. After
a reload the host waits `wait` seconds for the controller's new SSH login to confirm; if
none comes (the controller went away with its connection), it puts the old file back by
itself. confirm: the new login worked. undo: put the old file back and reload.
check: say what apply would change. Standard library only: this runs on the host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

Data = dict[str, Any]
HEADER = "# written by opsagent (security policy fixes); read before the rest of sshd_config\n"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def text_of(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path: str, text: str | None, mode: int = 0o600) -> None:
    """Put text at path atomically (None: remove it)."""
    if text is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = f"{path}.opsagent-new"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def sh(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=ENV)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return done.returncode, (done.stdout + done.stderr).strip()


def reload() -> tuple[int, str]:
    """Tell sshd to read its configuration again (its sessions stay)."""
    if os.path.isdir("/run/systemd/system"):
        return sh(["systemctl", "reload", "ssh.service"])
    pid = (text_of("/run/sshd.pid") or "").strip()
    if not pid.isdigit():
        return 1, "sshd is not running (no /run/sshd.pid)"
    try:
        os.kill(int(pid), 1)
    except OSError as e:
        return 1, f"could not signal sshd {pid}: {e.strerror}"
    return 0, ""


def wanted(job: Data) -> str:
    return HEADER + "".join(f"{key} {value}\n" for key, value in job["settings"])


def restore(job: Data) -> str:
    """Put back the file as it was before the last apply, and reload sshd."""
    saved = text_of(job["backup"])
    if saved is None:
        return "nothing to put back"
    before = json.loads(saved)
    write(job["file"], before["text"])
    if os.path.exists(job["pending"]):
        os.unlink(job["pending"])
    code, said = reload()
    return "put back the previous sshd drop-in" + ("" if code == 0 else f"; reload failed: {said}")


def apply(job: Data) -> int:
    current, new = text_of(job["file"]), wanted(job)
    if current == new:
        print(f"sshd drop-in {job['file']} is as it should be")
        return 0
    changes = ", ".join(f"{k} {v}" for k, v in job["settings"])
    if job["check"]:
        print(f"would change sshd drop-in {job['file']}: {changes}")
        return 0
    main_config = text_of("/etc/ssh/sshd_config") or ""
    folder = os.path.dirname(job["file"])
    if not re.search(rf"^\s*Include\s+{re.escape(folder)}/\*\.conf", main_config, re.M | re.I):
        print(f"/etc/ssh/sshd_config does not include {folder}/*.conf: nothing written",
              file=sys.stderr)
        return 1
    write(job["backup"], json.dumps({"text": current}))
    write(job["file"], new)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd -t insists on it
    code, said = sh(["/usr/sbin/sshd", "-t"])
    if code == 0 and "nable to load host key" in said:  # a warning to sshd, a fault here
        code = 1
    if code != 0:
        write(job["file"], current)
        print(f"sshd -t refused the change ({said.splitlines()[-1] if said else code}): the "
              "previous sshd drop-in is back, sshd was not reloaded", file=sys.stderr)
        return 1
    code, said = reload()
    if code != 0:
        write(job["file"], current)
        reload()
        print(f"reloading sshd failed ({said}): the previous sshd drop-in is back",
              file=sys.stderr)
        return 1
    token = str(time.time())
    write(job["pending"], token)
    watch(job, token)
    print(f"changed sshd drop-in {job['file']}: {changes} (checked by sshd -t, reloaded)")
    return 0


def watch(job: Data, token: str) -> None:
    """In a process of its own: unless the change is confirmed within `wait` seconds, put
    the old drop-in back (the controller, and the new login it owes, went away)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() != 0:
        return
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        time.sleep(job["wait"])
        if text_of(job["pending"]) == token:
            restore(job)
    finally:
        os._exit(0)


def main(job: Data) -> int:
    if job["action"] == "confirm":
        if os.path.exists(job["pending"]):
            os.unlink(job["pending"])
        print("confirmed")
        return 0
    if job["action"] == "undo":
        print(restore(job))
        return 0
    return apply(job)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[-1])))
