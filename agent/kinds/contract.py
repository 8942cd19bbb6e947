"""The contract every policy kind keeps (docs/kinds.md says how to add one).

A kind is one folder under agent/kinds/ holding an object that has:

- name and Spec: the `kind:` it answers to and the pydantic model of its `spec`, whose
  field descriptions and examples feed `opsagent explain KIND`;
- plan(spec, host): what one host needs, in order, as Steps and Sequences (data, never
  pyinfra calls; the engine runs them);
- observe(spec, host, ops): the facts it reads back from that host's results, kept in the
  state store (ops are found by their command ids, never by display titles);
- families(rows): its Prometheus metric families, from the facts kept for each policy
  and host (metrics.py asks every registered kind);
- findings(rows): what its last runs left for a person (a sync conflict), each with
  since when, for `opsagent report`; [] for none;
- includes: the spec lists whose items may be `- include: FILE` (a shared task file of
  the policies folder, agent.policy.include), e.g. ("tasks", "handlers"); () for none;
- variables: spec fields rendered first, which the rest of the spec then sees as
  variables (a deploy's `version` as {{ version }}); () for none;
- defaults: variables the kind's own runs set per host (a blue-green deploy's {{ slot }}),
  with the values validation and plain runs see; {} for none;
- rollout(spec), optional: the waves its policies run in, from their spec (a maintenance
  policy's reboot: batch, failure budget, health); the envelope's `rollout:` is then an
  error. Without it, the envelope's rollout (if any) applies;
- actions: its verbs (backup list, backup restore...). Each serves `opsagent KIND VERB
  POLICY` and the playbook step `KIND.VERB` with no command-line or playbook code of its
  own: an argument model, a check-mode preview, what to run on each host, and how to
  read its outcome. The run service locks, runs and records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from agent.core.hosts import HostInfo
from agent.core.results import HostResult, OpResult
from agent.core.steps import Observation, Sequence, Step

if TYPE_CHECKING:  # validating a policy needs no metrics library
    from prometheus_client.core import Metric

S = TypeVar("S", bound=BaseModel)
A = TypeVar("A", bound=BaseModel)
Facts = list[tuple[str, str, dict[str, Any]]]  # (policy, host, facts) for each policy and host


@dataclass(frozen=True)
class Finding:
    """Something a kind's last run left for a person, for the report: e.g. a branch in
    conflict (subject: repository and branch; detail: the files, which remote holds which
    head)."""

    policy: str
    host: str
    subject: str
    state: str
    since: float
    detail: str


@dataclass(frozen=True)
class Outcome:
    """What an action did on one host: lines to print, and data for --json."""

    ok: bool
    lines: tuple[str, ...] = ()
    data: Any = None


@dataclass(frozen=True)
class Action(Generic[S, A]):
    """One verb of a kind, e.g. backup restore.

    Args: its arguments beside the policy and host (field descriptions become the
    command's --options and the playbook step's documented fields; a field with
    json_schema_extra={"flag": "--path"} takes that option name).
    changes: it changes hosts, so it takes their locks and is recorded in the history
    and the audit log; check mode then shows preview() instead of running it. An action
    that only reads runs its commands' check variant and records nothing.
    one_host: it works on exactly one host of the policy (a restore).
    problem: (field, why) these arguments cannot be used, beyond the model; ("", "") when
    they can.
    """

    verb: str
    help: str
    Args: type[A]
    run: Callable[[S, HostInfo, A], list[Step | Sequence]]
    outcome: Callable[[S, HostInfo, A, HostResult], Outcome]  # of a host whose commands ran
    preview: Callable[[S, HostInfo, A], str] | None = None  # the line check mode prints
    changes: bool = False
    one_host: bool = False
    problem: Callable[[A], tuple[str, str]] = field(default=lambda args: ("", ""))


class Kind(Protocol[S]):
    @property
    def name(self) -> str: ...

    @property
    def Spec(self) -> type[S]: ...  # noqa: N802 (a model class, named as one)

    @property
    def actions(self) -> Mapping[str, Action[S, Any]]: ...

    @property
    def includes(self) -> tuple[str, ...]: ...  # spec lists whose items may `include:` a file

    @property
    def variables(self) -> tuple[str, ...]: ...  # spec fields the rest of the spec sees as {{ NAME }}

    @property
    def defaults(self) -> Mapping[str, Any]: ...  # variables the kind's runs set, as validation sees them

    def plan(self, spec: S, host: HostInfo) -> list[Step | Sequence]: ...

    def observe(self, spec: S, host: HostInfo, ops: list[OpResult]) -> Observation | None: ...

    def families(self, rows: Facts) -> Iterable[Metric]: ...

    def findings(self, rows: Facts) -> list[Finding]: ...
