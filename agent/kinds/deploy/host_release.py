"""The deploy kind's host program (standard library only): the releases of one app on
this host, as Capistrano lays them out.

    PATH/releases/VERSION/        one folder per release, with .opsagent-release (its source)
    PATH/current -> releases/V    switched by renaming a new symlink over it (atomic)
    PATH/.opsagent/deploy.json    the last verified release, failed ones, switch history
    PATH/.opsagent/incoming/      uploaded or fetched tarballs, by sha256

The job (JSON, argv[1]) says what to do: read, prepare, switch, verify, fail, prune or
rollback; `check` only says what it would do. Every job ends with a STATE line: the
current release, the verified one, the releases there and the failed ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HISTORY = 20  # switches remembered


class Refused(Exception):
    """The job cannot be done as asked: said on stderr, exit 1, nothing changed."""


def _state_file(path: Path) -> Path:
    return path / ".opsagent" / "deploy.json"


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_state_file(path).read_text())
    except (OSError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, Any]) -> None:
    target = _state_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".deploy.json.{os.getpid()}")
    temporary.write_text(json.dumps(data, sort_keys=True))
    os.replace(temporary, target)


def current(path: Path, link: str = "current") -> str | None:
    """The release a link (current, or a blue-green slot's slots/NAME) points at."""
    try:
        target = os.readlink(path / link)
    except OSError:
        return None
    parts = Path(target).parts
    return parts[-1] if len(parts) >= 2 and parts[-2] == "releases" else None


def slots(path: Path) -> dict[str, str | None]:
    folder = path / "slots"
    names = sorted(p.name for p in folder.iterdir() if p.is_symlink()) if folder.is_dir() else []
    return {name: current(path, f"slots/{name}") for name in names}


def releases(path: Path) -> list[str]:
    """Complete releases (with their marker), oldest first."""
    found = []
    folder = path / "releases"
    if folder.is_dir():
        for entry in folder.iterdir():
            marker = entry / ".opsagent-release"
            if entry.is_dir() and not entry.is_symlink() and marker.is_file():
                found.append((marker.stat().st_mtime, entry.name))
    return [name for _, name in sorted(found)]


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(path: Path, job: dict[str, Any], check: bool) -> None:
    version = job["version"]
    source = job.get("sha256") or f"git {job['git']} {job['ref']}"  # what the release is
    release = path / "releases" / version
    marker = release / ".opsagent-release"
    if marker.is_file() and json.loads(marker.read_text() or "{}").get("source") == source:
        print(f"release {version} is there")
        return
    if check:
        print(f"would unpack release {version}")
        return
    work = path / "releases" / f".{version}.unpacking{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    if job.get("git"):
        what = _clone(job["git"], job["ref"], work)
    else:
        work.mkdir()
        with tarfile.open(_tarball(path, job)) as tar:
            _unpack(tar, work)
        what = source[:12]
    (work / ".opsagent-release").write_text(json.dumps({"source": source, "at": time.time()}))
    if release.exists() or release.is_symlink():  # an incomplete or different one: aside
        aside = release.with_name(f".{version}.replaced{os.getpid()}")
        os.replace(release, aside)
        _remove(aside)
    os.replace(work, release)
    print(f"unpacked release {version} ({what})")


def _tarball(path: Path, job: dict[str, Any]) -> Path:
    """The artifact on this host (fetched first from its url), checked against its sha256."""
    sha = job["sha256"]
    incoming = path / ".opsagent" / "incoming" / f"{sha}.tar.gz"
    if job.get("url") and not incoming.is_file():
        incoming.parent.mkdir(parents=True, exist_ok=True)
        part = incoming.with_suffix(f".part{os.getpid()}")
        with urllib.request.urlopen(job["url"], timeout=60) as answer, part.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(answer, out)
        os.replace(part, incoming)
    if not incoming.is_file():
        raise Refused(f"the artifact {incoming} is not on this host")
    found = sha256_of(incoming)
    if found != sha:
        incoming.unlink()
        raise Refused(f"the artifact's sha256 is {found}, expected {sha}: refused (removed)")
    return incoming


def _clone(url: str, ref: str, into: Path) -> str:
    """The tree of a tag or branch (without .git) into `into`; its commit, shortened."""
    cloned = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", ref, "--", url,
                             str(into)], capture_output=True, text=True, timeout=600, check=False)
    if cloned.returncode != 0:
        shutil.rmtree(into, ignore_errors=True)
        raise Refused(f"git clone {url} {ref}: {cloned.stderr.strip()[-300:]}")
    commit = subprocess.run(["git", "-C", str(into), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    shutil.rmtree(into / ".git")
    return f"{ref} at {commit}"


def _unpack(tar: tarfile.TarFile, into: Path) -> None:
    """Every member inside `into`: no absolute paths, no .., no devices, no links out."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    for member in tar.getmembers():  # a Python without extraction filters
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise Refused(f"the artifact holds {member.name!r}: only plain files and folders "
                          "inside the release are unpacked")
    tar.extractall(into)  # noqa: S202 - every member was checked above


def switch(path: Path, version: str, check: bool, why: str = "", link: str = "current") -> None:
    was = current(path, link)
    if was == version:
        print(f"{link} is {version}")
        return
    if not (path / "releases" / version / ".opsagent-release").is_file():
        raise Refused(f"release {version} is not on this host")
    if check:
        print(f"would switch {link} from {was or 'nothing'} to {version}{why}")
        return
    final = path / link
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{os.getpid()}")
    if temporary.is_symlink():
        temporary.unlink()
    os.symlink(("../" * link.count("/")) + f"releases/{version}", temporary)
    os.replace(temporary, final)  # rename(2): the old link is replaced atomically
    data = load(path)
    data["history"] = [*data.get("history", []), {"at": time.time(), "from": was, "to": version,
                                                  "link": link}][-HISTORY:]
    save(path, data)
    print(f"switched {link} from {was or 'nothing'} to {version}{why}")


def promote(path: Path, slot: str, check: bool) -> None:
    """A blue-green slot becomes the active one: current follows its release."""
    version = current(path, f"slots/{slot}")
    if version is None:
        raise Refused(f"slot {slot} holds no release on this host")
    data = load(path)
    if data.get("active") != slot:
        if check:
            print(f"would promote slot {slot} ({version})")
            return
        data["active"] = slot
        save(path, data)
        print(f"promoted slot {slot} ({version})")
    switch(path, version, check)


def mark(path: Path, version: str, verified: bool, check: bool) -> None:
    data = load(path)
    failed = [v for v in data.get("failed", []) if v != version]
    if verified and data.get("verified") == version:
        print(f"release {version} is verified")
        return
    if not verified and version in data.get("failed", []):
        print(f"release {version} is marked failed")
        return
    if check:
        print(f"would mark release {version} {'verified' if verified else 'failed'}")
        return
    if verified:
        data["verified"] = version
    else:
        failed.append(version)
    data["failed"] = failed[-HISTORY:]
    save(path, data)
    print(f"marked release {version} {'verified' if verified else 'failed'}")


def prune(path: Path, keep: int, check: bool) -> None:
    data = load(path)
    kept = {current(path), data.get("verified"), *slots(path).values()}
    present = releases(path)
    failed = set(data.get("failed", []))
    removable = sorted((v for v in present if v not in kept), key=lambda v: v not in failed)
    extra = len(present) - keep
    for version in removable[:max(0, extra)]:  # failed ones first, then the oldest
        if check:
            print(f"would remove release {version}")
            continue
        _remove(path / "releases" / version)
        print(f"removed release {version}")
    for entry in (path / "releases").glob(".*") if (path / "releases").is_dir() else ():
        if not check and ".unpacking" in entry.name and not _alive(entry.name):
            _remove(entry)  # what a killed prepare left


def _alive(name: str) -> bool:
    pid = name.rsplit("unpacking", 1)[-1]
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def rollback(path: Path, to: str | None, check: bool, link: str = "current") -> None:
    data = load(path)
    target = to or data.get("verified")
    if not target:
        raise Refused("no verified release to roll back to on this host")
    if to and to in data.get("failed", []):
        raise Refused(f"release {to} failed its checks: it is not a release to roll back to")
    switch(path, target, check, " (rollback)", link)


def _remove(entry: Path) -> None:
    """A release folder, never following a symlink out of it."""
    if entry.is_symlink() or entry.is_file():
        entry.unlink()
    else:
        shutil.rmtree(entry)


def report(path: Path) -> None:
    data = load(path)
    print("STATE " + json.dumps({"current": current(path), "verified": data.get("verified"),
                                 "releases": releases(path), "failed": data.get("failed", []),
                                 "active": data.get("active"), "slots": slots(path),
                                 "switched": (data.get("history") or [{}])[-1].get("at")},
                                sort_keys=True))


def main(job: dict[str, Any]) -> int:
    path, check, what = Path(job["path"]), bool(job.get("check")), job["do"]
    try:
        if what == "prepare":
            prepare(path, job, check)
        elif what == "switch":
            switch(path, job["version"], check, link=job.get("link") or "current")
        elif what == "promote":
            promote(path, job["slot"], check)
        elif what in ("verify", "fail"):
            mark(path, job["version"], what == "verify", check)
        elif what == "prune":
            prune(path, int(job["keep"]), check)
        elif what == "rollback":
            rollback(path, job.get("to"), check, job.get("link") or "current")
        elif what != "read":
            raise Refused(f"unknown job {what!r}")
    except (Refused, OSError, tarfile.TarError, ValueError, subprocess.SubprocessError) as e:
        print(f"{what}: {e}", file=sys.stderr)
        report(path)
        return 1
    report(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
