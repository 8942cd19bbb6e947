"""A policy set's per-policy fingerprints: what makes the daemon run an edited policy at once."""

from __future__ import annotations

from pathlib import Path

from agent.daemon.policyset import load_set

HEAD = "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: %s}\ntargets: [all]\n" \
       "schedule: {every: 1h}\nspec:\n  tasks:\n"
WEB = HEAD % "web" + "    - files.template: {src: web.conf.j2, dest: /tmp/web.conf}\n"
DB = HEAD % "db" + "    - include: common/t.yml\n"


def fingerprints(root: Path, files: dict[str, str], state: Path) -> dict[str, str]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    policy_set = load_set([root / "policies"], "@local", root / "templates", state)
    return {p.name: p.fingerprint for p in policy_set.policies}


def test_an_edit_changes_the_fingerprint_of_the_policies_it_touches_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = fingerprints(tmp_path, {"policies/web.yml": WEB, "policies/db.yml": DB,
                                    "policies/common/t.yml": "- files.directory: {path: /a}\n",
                                    "templates/web.conf.j2": "port 80\n",
                                    "templates/other.j2": "unused\n"}, state)
    assert first["web"] != first["db"] and all(len(f) == 16 for f in first.values())
    assert fingerprints(tmp_path, {"templates/other.j2": "edited\n"}, state) == first
    named = fingerprints(tmp_path, {"templates/web.conf.j2": "port 8080\n"}, state)
    assert named["web"] != first["web"] and named["db"] == first["db"]
    included = fingerprints(tmp_path, {"policies/common/t.yml": "- files.directory: {path: /b}\n"},
                            state)
    assert included["db"] != named["db"] and included["web"] == named["web"]
    edited = fingerprints(tmp_path, {"policies/web.yml": WEB + "    - files.directory: {path: /c}\n"}, state)
    assert edited["web"] != included["web"] and edited["db"] == included["db"]
