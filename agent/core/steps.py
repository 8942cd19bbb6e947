"""What a kind plans for one host: pyinfra operations by name (Step), commands run in one
round trip (Sequence of Command), and the facts it reads back (Observation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core.secrets import SecretRef


class Guard(BaseModel):
    """Ansible-style conditions that make a command idempotent: it runs only when needed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    creates: str | None = Field(None, examples=["/usr/local/bin/app"],
                                description="Skip when this path exists.")
    removes: str | None = Field(None, examples=["/etc/app/legacy.conf"],
                                description="Skip when this path does not exist.")
    unless: str | None = Field(None, examples=["test -x /usr/local/bin/app"],
                               description="Skip when this shell command succeeds.")
    only_if: str | None = Field(None, examples=["systemctl is-enabled app"],
                                description="Run only when this shell command succeeds.")

    def is_empty(self) -> bool:
        return not (self.creates or self.removes or self.unless or self.only_if)


@dataclass(frozen=True)
class Step:
    """One pyinfra operation by dotted name with its arguments: data, not a pyinfra call."""

    name: str
    operation: str  # e.g. "files.line"
    args: Mapping[str, Any]
    guard: Guard | None = None
    sensitive: bool = False  # its diff and output are hidden everywhere (engine.hide)
    tags: tuple[str, ...] = ()  # for --tags / --skip-tags, with its policy's (agent/tags.py)
    notify: tuple[str, ...] = ()  # handlers of its policy to run when it changed something
    handler: str = ""  # this step is that handler: it runs only when notified on the host
    skip: str = ""  # why it does not run on this host (a false `when:`), shown as skipped
    when: str = ""  # a condition on registered results, evaluated just before it would run
    scope: Mapping[str, Any] = field(default_factory=dict)  # the variables `when` also sees
    register: str = ""  # the name later conditions on this host read its result by
    looped: bool = False  # one item of a loop: registered under `results`, as in Ansible


@dataclass(frozen=True)
class Rendered:
    """A Step's `src` that is text rendered on the controller from a template file (in the
    sandbox, when the policy was validated): the engine puts the text as the file."""

    text: str
    source: str  # the template file it came from, for messages


@dataclass(frozen=True)
class Login:
    """A change that must leave the host reachable over SSH (an sshd configuration).

    After the command changed something, the engine opens a new SSH connection to the
    host, as this run reached it, and runs `confirm` over it. When that login fails,
    `undo` runs at once over the run's own connection (sshd keeps the sessions it has)
    and the command fails with the reason. `confirm` also tells the host that the change
    was proven, where it waits to undo it by itself should the controller go away."""

    confirm: tuple[str, ...]
    undo: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """A command run on the host whose output the kind reads back (e.g. `borg create --json`).

    when: ok runs it only while every earlier command of its sequence succeeded; failed
    only after one failed (on_error hooks); always in any case; after_change only when
    the command just before it changed something (compact after prune). needs: names
    of earlier commands that must have succeeded (checks need the repository).
    unless: a probe command; when it exits 0 the command is not needed (ok). When it
    fails and `missing` is set, its output must match `missing`, else the command fails
    with the probe's error (e.g. `borg info` failing on a wrong passphrase, not a
    missing repository).
    every + stamp: run at most once per `every` seconds, remembered on the host by a
    stamp file that is touched after each success.
    check: the read-only command run in check mode instead (e.g. prune --dry-run);
    None: check mode reports it would run, with `preview` as its description.
    effect: what a success means: changed (it knows it changed something), ran (it
    cannot tell) or ok (it only reads); changed_if turns `changed` into ok when the
    output does not match.
    warning: exit codes that mean "done, with warnings" (borg's 1).
    secrets: whether the sequence's secret environment is passed to it (borg yes,
    hooks no).
    listing: its output is what it did (e.g. prune --list): shown as its diff.
    quiet: a regex of output lines that are for the kind to read back (a summary), not
    shown in the diff.
    keep: characters of its output read back (the last ones); 0: the engine's default
    (20,000), enough for a person, not for a kind that reads a line per item back.
    login: a change that must be proven by a new SSH login, else undone (Login); the
    command is then the last of its sequence.
    id: a stable name the kind finds its result by (OpResult.id; default: name), so
    observe never depends on display titles.
    """

    name: str
    argv: tuple[str, ...]
    when: Literal["ok", "failed", "always", "after_change"] = "ok"
    needs: tuple[str, ...] = ()
    unless: tuple[str, ...] | None = None
    missing: str | None = None
    every: int = 0
    stamp: str | None = None
    check: tuple[str, ...] | None = None
    preview: str = ""
    effect: Literal["changed", "ran", "ok"] = "ran"
    changed_if: str | None = None
    warning: tuple[int, ...] = ()
    retries: int = 0
    retry_wait: float = 10.0
    permanent: str | None = None  # output that makes a failure not worth retrying
    secrets: bool = False
    listing: bool = False
    quiet: str | None = None
    keep: int = 0
    login: Login | None = None
    id: str = ""

    @property
    def key(self) -> str:
        return self.id or self.name


@dataclass(frozen=True)
class Sequence:
    """Commands of one policy run on the host in one remote call, in order.

    env is passed to every command; secret_env is resolved on the controller (never
    from the host) and sent over the command's stdin, never on a command line, then
    masked in everything read back.
    """

    name: str
    commands: tuple[Command, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, SecretRef] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """Facts a kind reads from one host's results, kept in the state store for metrics.

    evidence: what the run found that must stay provable though it changed nothing (a
    security policy's checks): its sha256 is sealed into the audit log with the run, and
    the document is kept, with the audit head it belongs to, in one file per run
    (STATE_DIR/evidence/). summary: one line about it for the audit entry."""

    facts: Mapping[str, Any]
    evidence: Mapping[str, Any] | None = None
    summary: str = ""
