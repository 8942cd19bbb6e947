"""Shared task files: `include:` expands in place, with vars; every mistake is a problem
at the include, or in the included file through the chain that reached it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.daemon.policyset import load_set
from agent.errors import Problems
from agent.inventory import local
from agent.plan import build_plan
from agent.policy.validate import load_policies

HEAD = "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: %s}\ntargets: [all]\nspec:\n  tasks:\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def problems(paths: list[Path]) -> list[str]:
    with pytest.raises(Problems) as e:
        build_plan(load_policies(paths), local(), "@local", Path("templates"))
    return [str(p) for p in e.value.problems]


def test_included_tasks_take_the_includes_place_with_its_vars(tmp_path: Path) -> None:
    write(tmp_path, {
        "web.yml": HEAD % "web" + "    - files.directory: {path: /a}\n"
                   "    - include: common/users.yml\n      vars: {group: admins}\n"
                   "    - files.directory: {path: /z}\n",
        "common/users.yml": "- files.directory: {path: '/{{ group }}'}\n"
                            "- include: common/one.yml\n  vars: {group: inner}\n",
        "common/one.yml": "- files.directory: {path: '/{{ group }}-{{ own }}'}\n"
                          "  vars: {own: x}\n"})
    plan = build_plan(load_policies([tmp_path]), local(), "@local", Path("templates"))
    assert [s.step.args["path"] for s in plan.hosts[0].steps] == [  # type: ignore[union-attr]
        "/a", "/admins", "/inner-x", "/z"]


def test_every_include_mistake_is_a_problem_at_its_place(tmp_path: Path) -> None:
    write(tmp_path, {
        "bad.yml": HEAD % "bad" + "    - include: common/nope.yml\n"
                   "    - include: ../outside.yml\n    - include: web.yml\n"
                   "    - include: common/loop.yml\n      loop: [a]\n"
                   "    - include: common/typo.yml\n",
        "web.yml": HEAD % "web" + "    - files.directory: {path: /a}\n",
        "common/loop.yml": "- include: common/loop2.yml\n",
        "common/loop2.yml": "- include: common/loop.yml\n",
        "common/typo.yml": "- files.directory: {path: '/{{ nmae }}', mdoe: '755'}\n"})
    bad, typo = tmp_path / "bad.yml", tmp_path / "common" / "typo.yml"
    assert problems([bad]) == [
        f"{bad}:7:16: tasks 'bad' > spec.tasks[0].include: no task file {tmp_path}/common/nope.yml",
        f"{bad}:8:16: tasks 'bad' > spec.tasks[1].include: ../outside.yml is outside the "
        f"policies folder {tmp_path}: a task file is included from there",
        f"{bad}:9:16: tasks 'bad' > spec.tasks[2].include: {tmp_path}/web.yml is not a task "
        "file: expected a YAML list of tasks",
        f"{bad}:11:7: tasks 'bad' > spec.tasks[3].loop: an include takes vars:, when: and tags: beside "
        "it; found 'loop'"]
    (bad).write_text(HEAD % "bad" + "    - include: common/loop.yml\n"
                     "    - include: common/typo.yml\n")
    assert problems([bad]) == [
        f"{bad}:7 → {tmp_path}/common/loop.yml:1 → {tmp_path}/common/loop2.yml:1:12: "
        "tasks 'bad' > [0].include: include cycle: common/loop.yml → common/loop2.yml → "
        "common/loop.yml"]
    (bad).write_text(HEAD % "bad" + "    - include: common/typo.yml\n")
    assert problems([bad]) == [
        f"{bad}:7 → {typo}:1:27: tasks 'bad' > spec.tasks[0].files.directory.path: undefined "
        "variable 'nmae'"]
    typo.write_text(typo.read_text().replace("{{ nmae }}", "a"))
    assert problems([bad]) == [
        f"{bad}:7 → {typo}:1:33: tasks 'bad' > spec.tasks[0].files.directory.mdoe: unknown "
        "argument for files.directory; did you mean 'mode'?"]


def test_a_task_file_is_not_a_policy(tmp_path: Path) -> None:
    write(tmp_path, {"web.yml": HEAD % "web" + "    - include: common/t.yml\n",
                     "common/t.yml": "- files.directory: {path: /a}\n"})
    assert [p.name for p in load_policies([tmp_path])] == ["web"]  # the walk skips common/t.yml
    with pytest.raises(Problems) as e:
        load_policies([tmp_path / "common" / "t.yml"])
    assert [p.message for p in e.value.problems] == [
        "a list of tasks is a task file, for a policy's `include:`; name the policy that "
        "includes it, or its folder"]


def test_the_daemons_copy_keeps_includes_working(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"web.yml": HEAD % "web" + "    - include: common/t.yml\n",
                                   "common/t.yml": "- files.directory: {path: /a}\n",
                                   "other.yml": "not: a policy\n"})
    policy_set = load_set([src / "web.yml"], "@local", tmp_path / "none", tmp_path / "state")
    assert policy_set.policy_paths[0].read_text() == (src / "web.yml").read_text()
    assert (policy_set.policy_paths[0].parent / "common" / "t.yml").exists()
    assert not (policy_set.policy_paths[0].parent / "other.yml").exists()
    copied = load_policies(policy_set.policy_paths)
    assert [p.name for p in copied] == ["web"]


def test_an_includes_when_and_tags_reach_every_task_it_includes(tmp_path: Path) -> None:
    write(tmp_path, {
        "web.yml": HEAD % "web" + "    - include: common/t.yml\n      vars: {group: admins}\n"
                   "      when: \"'all' in host.groups\"\n      tags: [users]\n",
        "common/t.yml": "- files.directory: {path: /a}\n"
                        "- files.directory: {path: /b}\n  when: group != 'admins'\n  tags: own\n"})
    plan = build_plan(load_policies([tmp_path]), local(), "@local", Path("templates"))
    steps = [s.step for s in plan.hosts[0].steps]
    assert [(s.args["path"], s.skip, s.tags) for s in steps] == [  # type: ignore[union-attr]
        ("/a", "", ("users",)),
        ("/b", "when: ('all' in host.groups) and (group != 'admins') is false", ("users", "own"))]
