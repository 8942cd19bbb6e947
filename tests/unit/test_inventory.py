"""Inventory: nested groups, variable and SSH precedence, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import Problems
from agent.inventory import load_inventory


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(text)
    return path


def test_nested_groups_and_precedence(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """
vars: {port: 1, colour: grey}
ssh: {user: root, port: 22}
hosts:
  a: {vars: {port: 3}, ssh: {hostname: 127.0.0.2}}
  b: {}
  "@local": {}
groups:
  web: {hosts: [a], vars: {colour: blue, port: 2}, ssh: {port: 2222}, children: [canary]}
  canary: {hosts: [b], vars: {colour: yellow}}
"""))
    hosts = {h.name: h for h in inv.hosts}
    assert inv.groups["web"] == ("a", "b")
    assert dict(hosts["a"].info.vars) == {"port": 3, "colour": "blue"}
    assert dict(hosts["b"].info.vars) == {"port": 2, "colour": "yellow"}
    assert hosts["a"].ssh.hostname == "127.0.0.2"
    assert hosts["b"].ssh.port == 2222 and hosts["b"].ssh.user == "root"
    assert hosts["b"].info.groups == ("all", "web", "canary")
    assert hosts["@local"].is_local
    assert [h.name for h in inv.resolve(["canary", "a"])] == ["a", "b"]


def test_errors_name_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, """hosts:
  a: {ssh: {port: 99999, usr: root}}
groups:
  g: {hosts: [a, zz], children: [h]}
  h: {children: [g]}
""")
    with pytest.raises(Problems) as e:
        load_inventory(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:2:19: inventory > hosts.a.ssh.port: expected a value <= 65535, got 99999",
        f"{path}:2:26: inventory > hosts.a.ssh.usr: unknown field 'usr'; did you mean 'user'?",
    ]
    path.write_text("hosts:\n  a: {}\ngroups:\n  g: {hosts: [a, zz], children: [h]}\n"
                    "  h: {children: [g]}\n")
    with pytest.raises(Problems) as e:
        load_inventory(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:4:6: inventory > groups.g.children: groups contain each other: g > h",
        f"{path}:4:18: inventory > groups.g.hosts[1]: unknown host 'zz'",
    ]


def test_a_second_document_is_refused_where_it_starts(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts: {a: {}}\n---\nhosts: {b: {}}\n")
    with pytest.raises(Problems) as e:
        load_inventory(path)
    assert str(e.value) == f"{path}:3:1: inventory: expected one YAML document"
