"""A YAML inventory: hosts, groups (nested), variables and SSH settings.

    vars: {sandbox: /srv/sandbox}          # every host
    ssh: {user: root, key: ~/.ssh/id_ed25519, known_hosts_file: ~/.ssh/known_hosts}
    hosts:
      "@local": {}
      web1: {ssh: {hostname: 10.0.0.11}}
    groups:
      web: {hosts: [web1], vars: {port: 8080}, children: [canary]}

Settings merge from the least to the most specific: top level, groups (parents before
children, then by name), the host itself.

A variable may be a secret reference, `{env: NAME}` or `{file: PATH}` (at any depth): it
is resolved on the controller when the inventory is loaded, and its value is masked in
everything opsagent prints or stores (agent.core.secrets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.hosts import LOCAL, SSH, Host, HostInfo
from agent.core.secrets import SecretError, resolve_all
from agent.errors import Problem, Problems, dotted
from agent.patterns import select
from agent.policy.load import Document, load_one
from agent.policy.messages import problem


class HostEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vars: dict[str, Any] = Field(default_factory=dict)
    ssh: SSH = Field(default_factory=SSH)


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    ssh: SSH = Field(default_factory=SSH)


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vars: dict[str, Any] = Field(default_factory=dict)
    ssh: SSH = Field(default_factory=SSH)
    hosts: dict[str, HostEntry | None] = Field(min_length=1)
    groups: dict[str, Group] = Field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    hosts: tuple[Host, ...]
    groups: dict[str, tuple[str, ...]]  # group -> host names, nested groups expanded

    def names(self) -> set[str]:
        return {h.name for h in self.hosts}

    def with_vars(self, extra: dict[str, Any], per_host: dict[str, dict[str, Any]] | None = None
                  ) -> Inventory:
        """Every host with these variables over its own (Ansible's --extra-vars), and
        per_host's for each host named there over those."""
        if not extra and not per_host:
            return self
        return replace(self, hosts=tuple(replace(h, info=replace(h.info, vars={
            **h.info.vars, **extra, **(per_host or {}).get(h.name, {})})) for h in self.hosts))

    def resolve(self, targets: list[str]) -> list[Host]:
        """Hosts named by targets (hosts or groups), in inventory order."""
        wanted: set[str] = set()
        for target in targets:
            wanted.update(self.groups.get(target, (target,)))
        return [h for h in self.hosts if h.name in wanted]

    def select(self, patterns: list[str]) -> list[Host]:
        """Hosts that Ansible-style --limit patterns select (agent/patterns.py), in inventory
        order; several patterns are one comma list. Raises PatternError."""
        names = select(",".join(patterns), [h.name for h in self.hosts], self.groups)
        return [h for h in self.hosts if h.name in names]

    def knows(self, target: str) -> bool:
        return target in self.groups or target in self.names()


def local() -> Inventory:
    """The embedded default: this machine, through pyinfra's @local connector."""
    return Inventory((Host(HostInfo(LOCAL, ("all",))),), {"all": (LOCAL,)})


def load_inventory(path: Path) -> Inventory:
    doc = load_one(path, "inventory")
    try:
        model = InventoryFile.model_validate(doc.data)
    except ValidationError as e:
        raise Problems(problem(doc, err, "inventory", InventoryFile) for err in e.errors()) from None
    _resolve_secrets(model, doc)
    return _build(model, doc)


def _resolve_secrets(model: InventoryFile, doc: Document) -> None:
    """Every secret reference in the variables replaced by its value, or Problems."""
    owners: list[tuple[tuple[str, ...], HostEntry | Group | InventoryFile]] = [((), model)]
    owners += [(("groups", name), group) for name, group in model.groups.items()]
    owners += [(("hosts", name), entry) for name, entry in model.hosts.items() if entry]
    problems = []
    for where, owner in owners:
        try:
            owner.vars, _ = resolve_all(owner.vars, (*where, "vars"))
        except SecretError as e:
            loc = e.args[1]
            problems.append(doc.problem(loc, "inventory", dotted(loc), e.args[0]))
    if problems:
        raise Problems(problems)


def _build(model: InventoryFile, doc: Document) -> Inventory:
    problems: list[Problem] = []
    for name in model.groups:
        if name in model.hosts:
            problems.append(doc.problem(("groups", name), "inventory", f"groups.{name}",
                                        "a group cannot have the name of a host"))
    members: dict[str, tuple[str, ...]] = {"all": tuple(model.hosts)}
    depth: dict[str, int] = {}

    def expand(group: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        if group in members:
            return members[group]
        if group in trail:
            loc = ("groups", group)
            problems.append(doc.problem(loc, "inventory", f"groups.{group}.children",
                                        "groups contain each other: " + " > ".join(trail)))
            return ()
        entry = model.groups[group]
        names: list[str] = []
        for i, host in enumerate(entry.hosts):
            if host not in model.hosts:
                problems.append(doc.problem(("groups", group, "hosts", i), "inventory",
                                            f"groups.{group}.hosts[{i}]",
                                            f"unknown host {host!r}"))
            names.append(host)
        for i, child in enumerate(entry.children):
            if child not in model.groups:
                problems.append(doc.problem(("groups", group, "children", i), "inventory",
                                            f"groups.{group}.children[{i}]",
                                            f"unknown group {child!r}"))
                continue
            depth[child] = max(depth.get(child, 0), len(trail) + 1)
            names.extend(expand(child, (*trail, group)))
        members[group] = tuple(dict.fromkeys(names))
        return members[group]

    for group in model.groups:
        expand(group, ())
    if problems:
        raise Problems(problems)

    hosts = []
    for name, entry in model.hosts.items():
        entry = entry or HostEntry()
        groups = sorted((g for g in model.groups if name in members[g]),
                        key=lambda g: (depth.get(g, 0), g))
        variables: dict[str, Any] = dict(model.vars)
        ssh = model.ssh.model_dump(exclude_none=True)
        for g in groups:
            variables.update(model.groups[g].vars)
            ssh.update(model.groups[g].ssh.model_dump(exclude_none=True))
        variables.update(entry.vars)
        ssh.update(entry.ssh.model_dump(exclude_none=True))
        info = HostInfo(name, ("all", *groups), variables)
        hosts.append(Host(info, SSH(**ssh)))
    return Inventory(tuple(hosts), members)
