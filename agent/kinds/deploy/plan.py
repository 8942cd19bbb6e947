"""What a deploy runs on one host, as steps: the host program (host_release.py, sent in
the command's environment, needing only python3 there) with one job per command.

- read(): the host's release state (what `apply` and the daemon run: they never deploy);
- release(): upload the artifact (pyinfra's files.put, only when it is not there), unpack
  it, switch `current`, then the activate tasks;
- settle(): mark the release verified (it passed) and prune old releases;
- rollback(): mark the release failed, switch back to the verified one (or a given one),
  prune (failed releases go first), then the activate tasks;
- back_in_slot(): a blue-green emergency rollback's first half: the release to go back
  to switched into the idle slot (never a failed one), then the activate tasks.
Every command ends with a STATE line, which observe reads.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Sequence, Step
from agent.kinds.deploy.spec import DeploySpec

ID = "release"  # every command's id: observe reads the STATE line of the last one
PROGRAM = "OPSAGENT_DEPLOY_PROGRAM"
LAUNCH = f"import os; exec(compile(os.environ.pop({PROGRAM!r}), 'host_release.py', 'exec'))"
QUIET = "^STATE "
CHANGED = (r"^(would )?(unpack|unpacked|switch|switched|mark|marked|remove|removed|promote|"
           r"promoted) ")


@cache
def program() -> str:
    return (Path(__file__).parent / "host_release.py").read_text(encoding="utf-8")


@cache
def _digest(src: str) -> str:
    sha = hashlib.sha256()
    with open(src, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def sha256(spec: DeploySpec) -> str:
    """The artifact's sha256: given, or computed here from src (OSError if unreadable); ""
    for a git artifact."""
    if spec.artifact.sha256:
        return spec.artifact.sha256
    if spec.artifact.src is None:
        return ""
    return _digest(str(Path(spec.artifact.src).resolve()))


def _command(name: str, spec: DeploySpec, job: dict[str, object], effect: str = "changed"
             ) -> Command:
    full = {"path": spec.path, **job}

    def argv(check: bool) -> tuple[str, ...]:
        return ("python3", "-c", LAUNCH, json.dumps({**full, "check": check}, sort_keys=True))

    return Command(name, argv(False), check=argv(True), effect=effect,  # type: ignore[arg-type]
                   changed_if=CHANGED if effect == "changed" else None, quiet=QUIET, id=ID)


def _sequence(name: str, commands: tuple[Command, ...]) -> Sequence:
    return Sequence(name, commands, {PROGRAM: program()})


def read(spec: DeploySpec, host: HostInfo) -> list[Step | Sequence]:
    return [_sequence("release state", (_command("read release state", spec, {"do": "read"},
                                                  effect="ok"),))]


def release(spec: DeploySpec, host: HostInfo, slot: str = "") -> list[Step | Sequence]:
    """The release unpacked and switched in: current, or the blue-green slot given."""
    sha = sha256(spec)
    link = f"slots/{slot}" if slot else "current"
    steps: list[Step | Sequence] = []
    if spec.artifact.src is not None:
        steps.append(Step(f"upload {Path(spec.artifact.src).name}", "files.put", {
            "src": str(Path(spec.artifact.src).resolve()),
            "dest": f"{spec.path}/.opsagent/incoming/{sha}.tar.gz", "mode": "600"}))
    steps.append(_sequence(f"release {spec.version}", (
        _command(f"unpack release {spec.version}", spec,
                 {"do": "prepare", "version": spec.version, "sha256": sha,
                  "url": spec.artifact.url, "git": spec.artifact.git, "ref": spec.artifact.ref}),
        _command(f"switch {link} to {spec.version}", spec,
                 {"do": "switch", "version": spec.version, "link": link}))))
    return [*steps, *activate(spec, host)]


def activate(spec: DeploySpec, host: HostInfo) -> list[Step | Sequence]:
    if spec.activate is None:
        return []
    from agent.kinds.tasks import KIND as TASKS

    return TASKS.plan(spec.activate, host)


def settle(spec: DeploySpec, host: HostInfo) -> list[Step | Sequence]:
    return [_sequence(f"verify release {spec.version}", (
        _command(f"mark release {spec.version} verified", spec,
                 {"do": "verify", "version": spec.version}),
        _command(f"keep {spec.keep_releases} releases", spec,
                 {"do": "prune", "keep": spec.keep_releases})))]


def promote(spec: DeploySpec, host: HostInfo, slot: str, verified: bool) -> list[Step | Sequence]:
    """A blue-green slot made the active one (current follows); verified: its release
    passed, so it is marked so and old releases pruned; else the switch back of a rollback
    (the release it leaves marked failed)."""
    commands = [_command(f"make slot {slot} the active one", spec, {"do": "promote", "slot": slot})]
    if verified:
        commands.append(_command(f"mark release {spec.version} verified", spec,
                                 {"do": "verify", "version": spec.version}))
    else:
        commands.insert(0, _command(f"mark release {spec.version} failed", spec,
                                    {"do": "fail", "version": spec.version}))
    commands.append(_command(f"keep {spec.keep_releases} releases", spec,
                             {"do": "prune", "keep": spec.keep_releases}))
    return [_sequence(f"slot {slot}", tuple(commands))]


def scale_down(spec: DeploySpec, host: HostInfo) -> list[Step | Sequence]:
    blue_green = spec.strategy.blue_green
    if blue_green is None or blue_green.scale_down is None:
        return []
    from agent.kinds.tasks import KIND as TASKS

    return TASKS.plan(blue_green.scale_down, host)


def rollback(spec: DeploySpec, host: HostInfo, to: str | None, failed: str | None
             ) -> list[Step | Sequence]:
    """Back to `to` (default: the host's verified release); `failed` is marked so first,
    so it is never a release to roll back to."""
    commands = []
    if failed:
        commands.append(_command(f"mark release {failed} failed", spec,
                                 {"do": "fail", "version": failed}))
    commands.append(_command(f"roll back to {to or 'the verified release'}", spec,
                             {"do": "rollback", "to": to}))
    commands.append(_command(f"keep {spec.keep_releases} releases", spec,
                             {"do": "prune", "keep": spec.keep_releases}))
    return [_sequence("rollback", tuple(commands)), *activate(spec, host)]


def back_in_slot(spec: DeploySpec, host: HostInfo, slot: str, to: str) -> list[Step | Sequence]:
    """Release `to` (already on the host) into a blue-green slot, then the activate tasks."""
    return [_sequence(f"slot {slot}", (_command(f"roll back slot {slot} to {to}", spec, {
        "do": "rollback", "to": to, "link": f"slots/{slot}"}),)), *activate(spec, host)]
