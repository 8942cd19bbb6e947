"""The maintenance kind's git housekeeping, run on the host (standard library and git).

For each repository the globs find: clear stale locks (a gc.pid whose process is gone or
older than 12 h, a *.lock file no process holds that is older than `stale_lock`); skip
a repository a live process is writing (reported); fsck at its own frequency (its last
result kept in GITDIR/opsagent-maintenance.json; a repository whose fsck fails gets no
writing task until it passes); then only the tasks whose thresholds are crossed, in
git's order: prune (old unreachable loose objects), repack (geometric), pack-refs,
commit-graph. Each repository ends with a `REPO {json}` line (its state, what it read
before and after, the tasks run) for the kind to read back; the other lines say what
was done for a person. `check` only says what would be done. Exit 1 when a repository
failed (a git error, fsck failing), after every other was done.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STATE = "opsagent-maintenance.json"
GC_PID_STALE = 12 * 3600  # git's own rule for a gc.pid
LOCK_PLACES = ("", "refs", "logs", "objects/info", "objects/pack")


def gitdir(path: Path) -> Path | None:
    """The git directory of a bare repository or a work tree, or None."""
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir():
        return path
    inner = path / ".git"
    return inner if inner.is_dir() and not inner.is_symlink() else None


def found(globs: list[str]) -> tuple[list[Path], list[str]]:
    """The repositories the globs match (each once, in order) and what was skipped."""
    repositories: list[Path] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for pattern in globs:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            if match in seen:
                continue
            seen.add(match)
            if path.is_symlink():
                skipped.append(f"{match}: a symlink, not followed")
                continue
            if not path.is_dir() or gitdir(path) is None:
                continue
            repositories.append(path)
    return repositories, skipped


def git(repository: Path, *args: str, nice: list[str] | None = None,
        timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(nice or []), "git", "--git-dir", str(repository), *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"})


def read(repository: Path) -> dict[str, Any]:
    """Loose objects, packs and their size, loose refs, and whether the commit-graph
    covers the newest pack."""
    counted = git(repository, "count-objects", "-v")
    if counted.returncode != 0:
        raise RuntimeError(counted.stderr.strip() or "git count-objects failed")
    values = dict(line.split(": ", 1) for line in counted.stdout.splitlines() if ": " in line)
    packs = list((repository / "objects" / "pack").glob("*.pack"))
    refs = sum(1 for _, _, files in os.walk(repository / "refs")
               for f in files if not f.endswith(".lock"))
    info = repository / "objects" / "info"
    graphs = [p for p in (info / "commit-graph", info / "commit-graphs" / "commit-graph-chain")
              if p.is_file()]
    newest = max((p.stat().st_mtime for p in packs), default=0.0)
    graph = max((p.stat().st_mtime for p in graphs), default=None)
    return {"loose_objects": int(values.get("count", 0)), "packs": int(values.get("packs", 0)),
            "size_kib": int(values.get("size", 0)) + int(values.get("size-pack", 0)),
            "loose_refs": refs,
            "commit_graph": "none" if graph is None else "fresh" if graph >= newest else "stale"}


def open_files() -> set[str]:
    """Every file some process this user can see holds open."""
    held: set[str] = set()
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                held.add(os.readlink(f"{fd_dir}/{name}"))
            except OSError:
                continue
    return held


def locks(repository: Path, stale_after: int, held: set[str], now: float
          ) -> tuple[list[str], list[Path]]:
    """(why the repository is being written, the stale locks to clear)."""
    live: list[str] = []
    stale: list[Path] = []
    pid_file = repository / "gc.pid"
    if pid_file.is_file():
        try:
            pid, _, host = pid_file.read_text().strip().partition(" ")
            age = now - pid_file.stat().st_mtime
        except OSError:
            pid, host, age = "", "", 0.0
        if pid.isdigit() and host == socket.gethostname() and Path(f"/proc/{pid}").exists() \
                and age < GC_PID_STALE:
            live.append(f"git gc (pid {pid}) runs")
        else:
            stale.append(pid_file)
    for place in LOCK_PLACES:
        folder = repository / place
        walked = os.walk(folder) if place in ("refs", "logs") else [(str(folder), [], _files(folder))]
        for root, _, files in walked:
            for name in files:
                if not name.endswith(".lock"):
                    continue
                lock = Path(root) / name
                try:
                    age = now - lock.lstat().st_mtime
                except OSError:
                    continue
                if str(lock) in held or os.path.realpath(lock) in held:
                    live.append(f"{lock.relative_to(repository)} is held by a running process")
                elif age < stale_after:
                    live.append(f"{lock.relative_to(repository)} is {int(age)}s old")
                else:
                    stale.append(lock)
    return live, stale


def _files(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def load(repository: Path) -> dict[str, Any]:
    try:
        data = json.loads((repository / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(repository: Path, data: dict[str, Any]) -> None:
    target = repository / STATE
    temporary = target.with_name(f".{STATE}.{os.getpid()}")
    temporary.write_text(json.dumps(data, sort_keys=True))
    os.replace(temporary, target)


def needed(state: dict[str, Any], limits: dict[str, int], settled: dict[str, Any] | None = None
           ) -> list[tuple[str, str]]:
    """(task, why) for every threshold crossed, in the order they run. settled: what the
    last pass left (loose objects too young to prune, packs a geometric repack keeps): a
    count no higher than that is not crossed again, so a pass that can do no more is not
    repeated at every run."""
    settled = settled or {}
    loose = state["loose_objects"] > max(limits["loose_objects"], settled.get("loose_objects", 0))
    packs = state["packs"] > max(limits["packs"], settled.get("packs", 0))
    tasks = []
    if loose:
        tasks.append(("prune", f"{state['loose_objects']} loose objects > {limits['loose_objects']}"))
    if loose or packs:
        tasks.append(("repack", f"{state['loose_objects']} loose objects, {state['packs']} packs"))
    if state["loose_refs"] > limits["loose_refs"]:
        tasks.append(("pack-refs", f"{state['loose_refs']} loose refs > {limits['loose_refs']}"))
    if state["commit_graph"] == "stale" or (state["commit_graph"] == "none" and state["packs"]):
        tasks.append(("commit-graph", f"the commit-graph is {state['commit_graph']}"))
    elif loose or packs:
        tasks.append(("commit-graph", "the repack makes a new pack"))
    return tasks


COMMANDS = {
    "prune": lambda job: ["prune", f"--expire={int(job['prune_after'])}.seconds.ago"],
    "repack": lambda job: ["repack", "-d", "-l", "--geometric=2", "-q", "--threads=1"],  # one core
    "pack-refs": lambda job: ["pack-refs", "--all", "--prune"],
    "commit-graph": lambda job: ["commit-graph", "write", "--reachable", "--no-progress"],
}
DONE = {"prune": "pruned", "repack": "repacked", "pack-refs": "packed refs of",
        "commit-graph": "wrote the commit-graph of"}
WOULD = {"prune": "would prune", "repack": "would repack", "pack-refs": "would pack refs of",
         "commit-graph": "would write the commit-graph of"}


def fsck_due(last: dict[str, Any], job: dict[str, Any], now: float) -> bool:
    """Whether fsck is due, given its last result (the state file's "fsck")."""
    every = int(job.get("fsck_every") or 0)
    return bool(every) and (not last.get("ok") or now - float(last.get("at", 0)) >= every)


def fsck(repository: Path, nice: list[str], now: float) -> dict[str, Any]:
    """git fsck --full: its result as the state file keeps it (at, ok, error)."""
    done = git(repository, "fsck", "--no-progress", "--no-dangling", "--full", nice=nice)
    said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    ok = done.returncode == 0
    return {"at": now, "ok": ok, "error": "; ".join(said[:3])[:500] if not ok else ""}


def tidy(repository: Path, job: dict[str, Any], held: set[str], now: float) -> dict[str, Any]:
    """One repository: its locks, fsck, the tasks it needs. What happened, as REPO says."""
    check = bool(job.get("check"))
    nice = job.get("nice_command") or []
    entry: dict[str, Any] = {"path": str(repository), "tasks": [], "cleared": []}
    live, stale = locks(repository, int(job["stale_lock"]), held, now)
    if live:
        entry.update(state="locked", why="; ".join(live))
        print(f"skipped {repository}: being written ({entry['why']})")
        return entry
    for lock in stale:
        name = str(lock.relative_to(repository))
        if check:
            print(f"would clear stale lock {name} of {repository}")
        else:
            lock.unlink(missing_ok=True)
            print(f"cleared stale lock {name} of {repository}")
        entry["cleared"].append(name)
    entry["before"] = before = read(repository)
    data = load(repository)
    last = data.get("fsck") or {}
    if fsck_due(last, job, now):
        if check:
            print(f"would fsck {repository}")
        else:
            data["fsck"] = last = fsck(repository, nice, now)
            save(repository, data)
            print(f"fsck {repository}: {'clean' if last['ok'] else 'FAILED: ' + last['error']}")
    if last and not last.get("ok"):
        entry.update(state="fsck-failing", why=last.get("error") or "git fsck failed")
        if check:
            print(f"fsck of {repository} failed at its last run: {entry['why']}")
        return entry
    tasks = needed(before, job["limits"], data.get("settled"))
    entry["tasks"] = [task for task, _ in tasks]
    for task, why in tasks:
        if check:
            print(f"{WOULD[task]} {repository} ({why})")
            continue
        done = git(repository, *COMMANDS[task](job), nice=nice)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            entry.update(state="error", why=f"git {task}: {said[-1] if said else 'failed'}")
            print(f"{repository}: {entry['why']}", file=sys.stderr)
            return entry
        print(f"{DONE[task]} {repository} ({why})")
    entry["after"] = after = read(repository) if tasks and not check else before
    if tasks and not check:
        data["settled"] = {"loose_objects": after["loose_objects"], "packs": after["packs"]}
        save(repository, data)
    entry["state"] = ("needs-maintenance" if check and tasks else "maintained" if tasks
                      else "healthy")
    return entry


def main(job: dict[str, Any]) -> int:
    now = time.time()
    if job.get("nice"):
        job["nice_command"] = ["nice", "-n", "19"] + (
            ["ionice", "-c", "3"] if shutil.which("ionice") else [])
    repositories, skipped = found(job["repositories"])
    for line in skipped:
        print(f"skipped {line}")
    held = open_files()
    failed = 0
    for repository in repositories:
        try:
            entry = tidy(repository, job, held, now)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            entry = {"path": str(repository), "state": "error", "why": str(e)}
            print(f"{repository}: {e}", file=sys.stderr)
        failed += entry["state"] in ("error", "fsck-failing")
        print("REPO " + json.dumps(entry, sort_keys=True))
    print("GIT " + json.dumps({"repositories": len(repositories), "failed": failed,
                               "skipped": skipped}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
