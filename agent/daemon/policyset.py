"""A validated policy set, copied aside so that runs keep using it while its files change.

The daemon validates policies, inventory and templates exactly as `opsagent apply`
would (every policy planned for every host it targets). A set that passes is copied
into the state directory and its runs read the copy: an edit that breaks a policy file
is reported, and the last good set keeps running until the files are fixed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.hosts import LOCAL
from agent.errors import Problems
from agent.inventory import Inventory, load_inventory, local
from agent.plan import build_plan
from agent.policy.load import find_files
from agent.policy.model import Schedule
from agent.policy.validate import Policy, read_policies


@dataclass(frozen=True)
class Scheduled:
    """One policy the daemon runs: its schedule, mode and the hosts it targets."""

    name: str
    kind: str
    mode: str
    schedule: Schedule
    hosts: tuple[str, ...]
    fingerprint: str = ""  # what the policy is made of (see fingerprint()); changes run it


@dataclass(frozen=True)
class PolicySet:
    root: Path  # the copy: policies/, inventory.yml (unless @local), templates/
    digest: str
    policies: tuple[Scheduled, ...]
    unscheduled: tuple[str, ...]  # policies with no schedule: one-shot runs only
    paths: tuple[str, ...] = ("policies",)  # what runs apply, under root: folders and files

    @property
    def inventory(self) -> str:
        path = self.root / "inventory.yml"
        return str(path) if path.exists() else LOCAL

    @property
    def policy_paths(self) -> list[Path]:
        return [self.root / path for path in self.paths]

    @property
    def templates(self) -> Path:
        return self.root / "templates"


def sources(paths: list[Path], inventory: str, templates: Path) -> list[Path]:
    """Every file the set is made of, in a fixed order."""
    files = find_files(paths)
    if inventory != LOCAL:
        files.append(Path(inventory))
    if templates.is_dir():
        files.extend(sorted(p for p in templates.rglob("*") if p.is_file()))
    return files


def signature(paths: list[Path], inventory: str, templates: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap to compute every few seconds: names, sizes and modification times."""
    out = []
    for path in sources(paths, inventory, templates):
        try:
            st = path.stat()
        except OSError:
            out.append((str(path), -1, -1))
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_set(paths: list[Path], inventory: str, templates: Path, store_dir: Path) -> PolicySet:
    """Validate the set and copy it under store_dir/sets/DIGEST; raises Problems."""
    problems = []
    inv: Inventory | None = None
    try:
        inv = local() if inventory == LOCAL else load_inventory(Path(inventory))
    except Problems as e:
        problems.extend(e.problems)
    policies, policy_problems = read_policies(paths)
    problems.extend(policy_problems)
    if inv is None or problems:
        raise Problems(problems)
    build_plan(policies, inv, inventory, templates)  # raises Problems with everything wrong
    included = list(dict.fromkeys(p for policy in policies for p in policy.doc.included))
    digest = _digest(list(dict.fromkeys([*sources(paths, inventory, templates), *included])))
    root = store_dir / "sets" / digest
    run_paths = _copy(paths, included, inventory, templates, root)
    scheduled, unscheduled = [], []
    for policy in policies:
        env = policy.envelope
        if env.schedule is None:
            unscheduled.append(policy.name)
            continue
        hosts = tuple(h.name for h in inv.resolve(env.targets))
        scheduled.append(Scheduled(policy.name, env.kind, env.mode, env.schedule, hosts,
                                   fingerprint(policy, inventory, templates)))
    return PolicySet(root, digest, tuple(scheduled), tuple(unscheduled), run_paths)


def fingerprint(policy: Policy, inventory: str, templates: Path) -> str:
    """A digest of what the policy is made of: its document, the task files it includes,
    the templates it names and the inventory. Another policy's edit leaves it alone."""
    h = hashlib.sha256(json.dumps(policy.doc.data, sort_keys=True, default=str).encode())
    named = sorted({s for s in _strings(policy.doc.data) if s and (templates / s).is_file()})
    files = [*policy.doc.included, *(templates / s for s in named)]
    if inventory != LOCAL:
        files.append(Path(inventory))
    for path in files:
        h.update(b"\0" + str(path).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256(b"layout 2\0")  # copies keep each folder's layout (see _copy)
    for path in files:
        h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _copy(paths: list[Path], included: list[Path], inventory: str, templates: Path,
          root: Path) -> tuple[str, ...]:
    """Copy the set under root (unless it is there), keeping each policy folder's layout so
    that includes resolve as in the original; the paths (under root) runs apply."""
    run_paths = []
    copies: list[tuple[Path, Path]] = []
    for i, path in enumerate(paths):
        folder = path if path.is_dir() else path.parent
        dest = Path("policies", f"{i:02d}")  # numbered: two folders may hold files of one name
        run_paths.append(str(dest if path.is_dir() else dest / path.name))
        inside = [p for p in included if p.resolve().is_relative_to(folder.resolve())]
        copies.extend((f, dest / f.relative_to(folder))
                      for f in dict.fromkeys([*find_files([path]), *inside]))
    if root.exists():
        return tuple(run_paths)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "policies").mkdir(parents=True)
    for source, target in copies:
        (tmp / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, tmp / target)
    if inventory != LOCAL:
        shutil.copy2(inventory, tmp / "inventory.yml")
    if templates.is_dir():
        shutil.copytree(templates, tmp / "templates", symlinks=True)
    else:
        (tmp / "templates").mkdir()
    tmp.rename(root)
    return tuple(run_paths)


def drop_unused(store_dir: Path, keep: set[str]) -> None:
    """Remove copies no longer current and no longer read by a run."""
    sets = store_dir / "sets"
    if not sets.is_dir():
        return
    for path in sets.iterdir():
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
