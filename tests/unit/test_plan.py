"""Planning: which steps, in which order, with which rendered arguments, for which host."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.plans import PlannedStep, RunPlan
from agent.core.steps import Guard, Rendered, Step
from agent.errors import Problems
from agent.inventory import load_inventory
from agent.plan import build_plan
from agent.policy.validate import load_policies

CASES = Path(__file__).parent.parent / "cases"


def plan(limit: list[str] | None = None, only: list[str] | None = None) -> RunPlan:
    inventory = load_inventory(CASES / "inventory.yml")
    policies = load_policies([CASES / "valid"])
    return build_plan(policies, inventory, "inv", CASES / "templates", limit, only)


def op(planned: PlannedStep) -> Step:
    assert isinstance(planned.step, Step)
    return planned.step


def test_steps_per_host_in_policy_file_order() -> None:
    result = plan()
    summary = {h.host.name: [(s.policy.name, op(s).operation) for s in h.steps]
               for h in result.hosts}
    assert summary == {
        "web1": [("base", "files.directory"), ("web-conf", "files.template"),
                 ("web-conf", "server.shell")],
        "web2": [("base", "files.directory"), ("web-conf", "files.template"),
                 ("web-conf", "server.shell")],
        "db1": [("base", "files.directory"), ("db-audit", "files.line")],
    }


def test_arguments_rendered_per_host_and_coerced() -> None:
    hosts = {h.host.name: h for h in plan().hosts}
    template = op(hosts["web1"].steps[1])
    assert template.args["dest"] == "/tmp/opsagent-cases/web1/app.conf"
    # rendered for this host, in the sandbox, when the policy was validated
    assert template.args["src"] == Rendered("listen 8080\n", str(CASES / "templates" / "app.conf.j2"))
    assert "port" not in template.args
    directory = op(hosts["db1"].steps[0])
    assert directory.args == {"path": "/tmp/opsagent-cases", "mode": 755, "_sudo": False}
    assert directory.name == "root folder"
    shell = op(hosts["web2"].steps[2])
    assert shell.guard == Guard(creates="/tmp/opsagent-cases/web2/stamp")
    assert hosts["db1"].steps[1].policy.mode == "audit"


def test_limit_and_policy_selection() -> None:
    result = plan(limit=["db"], only=["db-audit"])
    assert [h.host.name for h in result.hosts] == ["db1"]
    assert [op(s).operation for s in result.hosts[0].steps] == ["files.line"]


def test_unknown_limit_and_policy_are_bad_input() -> None:
    with pytest.raises(Problems) as e:
        plan(limit=["nope"], only=["ghost"])
    assert [str(p) for p in e.value.problems] == [
        "--limit: no host or group 'nope' in the inventory",
        "--policy: no policy named 'ghost'; known: base, db-audit, web-conf",
    ]


def test_a_selection_that_plans_nothing_is_bad_input() -> None:
    with pytest.raises(Problems) as e:
        plan(limit=["web1"], only=["db-audit"])
    assert [str(p) for p in e.value.problems] == [
        "--limit: no selected policy targets web1 (db-audit targets db1): nothing to do"]


def test_limit_takes_ansible_patterns() -> None:
    assert [h.host.name for h in plan(limit=["web:!web1"]).hosts] == ["web2"]
    assert [h.host.name for h in plan(limit=["web*", "db1"]).hosts] == ["web1", "web2", "db1"]
    with pytest.raises(Problems) as e:
        plan(limit=["web:&db"])
    assert [str(p) for p in e.value.problems] == [
        "--limit: 'web:&db' selects no host of the inventory"]


def test_when_is_evaluated_per_host_on_the_controller(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(
        "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: cond}\ntargets: [all]\n"
        "spec:\n  tasks:\n    - files.directory: {path: /srv/web}\n"
        "      when: \"'web' in host.groups and port > 8080\"\n"
        "    - files.directory: {path: /srv/any}\n      when: true\n")
    inventory = load_inventory(CASES / "inventory.yml")
    result = build_plan(load_policies([tmp_path / "p.yml"]), inventory, "inv", CASES / "templates")
    assert {hp.host.name: [op(s).skip for s in hp.steps] for hp in result.hosts} == {
        "web1": ["when: 'web' in host.groups and port > 8080 is false", ""],
        "web2": ["", ""],
        "db1": ["when: 'web' in host.groups and port > 8080 is false", ""]}


def test_a_loop_is_one_step_per_item_and_whole_expressions_keep_their_type(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(
        "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: each}\ntargets: [web1]\n"
        "spec:\n  tasks:\n    - files.directory: {path: '/srv/{{ item }}', mode: '{{ port }}'}\n"
        "      loop: \"{{ ['a', 'b', 'c'] | map('upper') }}\"\n      when: item != 'B'\n"
        "    - name: none\n      files.directory: {path: /x}\n      loop: []\n")
    inventory = load_inventory(CASES / "inventory.yml")
    result = build_plan(load_policies([tmp_path / "p.yml"]), inventory, "inv", CASES / "templates")
    steps = [op(s) for s in result.hosts[0].steps]
    assert [(s.name, s.args["path"], s.args["mode"], s.skip) for s in steps] == [
        ("files.directory /srv/A (A)", "/srv/A", 8080, ""),  # the port as a number, not "8080"
        ("files.directory /srv/B (B)", "/srv/B", 8080, "when: item != 'B' is false"),
        ("files.directory /srv/C (C)", "/srv/C", 8080, "")]
