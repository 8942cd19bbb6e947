"""The maintenance kind's disk cleanup, run on the host (standard library, journalctl and
apt-get): the journal vacuumed to its size, the apt cache emptied, and in each given
folder the files and links older than its age removed (empty folders that old too).

A folder is walked with os.fwalk, holding each directory open and removing by name in
it: a symlink is removed as a link and never followed, and a directory swapped for a
symlink during the walk is not entered, so nothing outside the folder is touched. A
given folder that is itself a symlink is refused. Each part ends with a `CLEANUP {json}`
line (bytes reclaimed: the blocks freed, a file with other hard links frees none); `check`
only says what would be reclaimed. Exit 1 when a part failed, after the others ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from typing import Any

FREED = re.compile(r"freed ([\d.]+)([KMGTPE]?)B?\b")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=3600, check=False,
                          env={**os.environ, "LC_ALL": "C"})


def freed(stat_result: os.stat_result) -> int:
    return stat_result.st_blocks * 512 if stat_result.st_nlink <= 1 else 0


def folder(path: str, older_than: int, check: bool, now: float) -> dict[str, Any]:
    """Files and links under path older than older_than seconds, and then empty folders
    as old, removed without following any symlink."""
    entry: dict[str, Any] = {"part": "paths", "path": path, "files": 0, "bytes": 0}
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        entry["note"] = "not there"
        return entry
    if not stat.S_ISDIR(top.st_mode):
        raise RuntimeError(f"{path} is {'a symlink' if stat.S_ISLNK(top.st_mode) else 'not a folder'}"
                           ", not cleaned")
    cutoff = now - older_than
    for root, dirs, files, fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            try:
                seen = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not (stat.S_ISREG(seen.st_mode) or stat.S_ISLNK(seen.st_mode)) \
                    or seen.st_mtime >= cutoff:
                continue
            if not check:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
            entry["files"] += 1
            entry["bytes"] += freed(seen)
        for name in dirs:
            try:
                seen = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(seen.st_mode) or seen.st_mtime >= cutoff or check:
                continue
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                continue  # not empty: something young in it
    said = "would remove" if check else "removed"
    if entry["files"]:
        print(f"{said} {entry['files']} files older than {age(older_than)} in {path}, {entry['bytes']} bytes")
    return entry


def age(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def journal(max_size: str, check: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"part": "journal", "bytes": 0}
    if shutil.which("journalctl") is None:
        entry["note"] = "no journalctl"
        return entry
    if check:
        usage = run("journalctl", "--disk-usage")
        print(f"would vacuum the journal to {max_size}: {usage.stdout.strip()}")
        return entry
    done = run("journalctl", f"--vacuum-size={max_size}")
    if done.returncode != 0:
        raise RuntimeError(f"journalctl --vacuum-size: {done.stderr.strip()}")
    for number, unit in FREED.findall(done.stdout + done.stderr):
        entry["bytes"] += int(float(number) * UNITS[unit])
    if entry["bytes"]:
        print(f"vacuumed the journal to {max_size}, {entry['bytes']} bytes")
    return entry


def apt_cache(check: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"part": "apt_cache", "bytes": 0, "files": 0}
    if shutil.which("apt-get") is None:
        entry["note"] = "no apt-get"
        return entry
    shown = run("apt-config", "shell", "CACHE", "Dir::Cache/d", "ARCHIVES", "Dir::Cache::archives/d")
    places = dict(re.findall(r"^(\w+)='([^']*)'$", shown.stdout, re.M))
    archives = places.get("ARCHIVES", "/var/cache/apt/archives/")
    cache = places.get("CACHE", "/var/cache/apt/")
    found = [os.path.join(archives, "partial", n) for n in _names(os.path.join(archives, "partial"))]
    found += [os.path.join(archives, n) for n in _names(archives) if n.endswith(".deb")]
    found += [os.path.join(cache, n) for n in ("pkgcache.bin", "srcpkgcache.bin")]
    for path in found:
        try:
            seen = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(seen.st_mode):
            entry["files"] += 1
            entry["bytes"] += freed(seen)
    if not entry["files"]:
        return entry
    if not check:
        done = run("apt-get", "clean")
        if done.returncode != 0:
            raise RuntimeError(f"apt-get clean: {done.stderr.strip()}")
    print(f"{'would empty' if check else 'emptied'} the apt cache, {entry['bytes']} bytes")
    return entry


def _names(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def main(job: dict[str, Any]) -> int:
    now = time.time()
    check = bool(job.get("check"))
    parts: list[tuple[str, Any]] = []
    if job.get("journal"):
        parts.append(("journal", lambda: journal(job["journal"], check)))
    if job.get("apt_cache"):
        parts.append(("apt_cache", lambda: apt_cache(check)))
    for rule in job.get("paths", []):
        parts.append((rule["path"], lambda rule=rule: folder(rule["path"], int(rule["older_than"]),
                                                             check, now)))
    failed = 0
    for name, part in parts:
        try:
            entry = part()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            entry = {"part": "paths" if name.startswith("/") else name, "bytes": 0, "error": str(e)}
            if name.startswith("/"):
                entry["path"] = name
            print(f"{name}: {e}", file=sys.stderr)
            failed += 1
        print("CLEANUP " + json.dumps(entry, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
