"""The sync kind's merge strategy on @local against real bare repositories: a clean
divergence is merged, verified and pushed everywhere (check mode pushes nothing); a verify
that fails or a conflict no rule settles pushes nothing and says which files; resolve
rules and rerere (a resolution a person made once) settle conflicts and are named."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.gitremotes import REMOTES, SYNC, Project, git
from tests.support.project import opsagent

MERGE = """\
  branches:
    - {{match: main, strategy: merge, verify: "{verify}", resolve: [
        {{path: CHANGELOG.md, with: union}}, {{path: "*.lock", with: priority}}]}}
    - {{match: "release/*", strategy: merge}}
    - {{match: "*", strategy: ff-only}}
"""


def diverged(p: Project, ours: dict[str, str], theirs: dict[str, str],
             branch: str = "main") -> tuple[str, str, str]:
    """A base on every remote, then public and internal each one commit further."""
    base = p.change({"CHANGELOG.md": "# changes\n", "deps.lock": "v0\n", "app.txt": "app\n"},
                    "base")
    for remote in REMOTES:
        p.push(remote, base, branch)
    one = p.change(ours, "public's change", on=base)
    two = p.change(theirs, "internal's change", on=base)
    p.push("public", one, branch)
    p.push("internal", two, branch)
    return base, one, two


def test_a_clean_divergence_is_merged_verified_and_pushed_everywhere(tmp_path: Path) -> None:
    p = Project(tmp_path, extra=MERGE.format(verify="test -f a.txt && test -f b.txt"))
    _, one, two = diverged(p, {"a.txt": "a\n", "CHANGELOG.md": "# changes\n- a\n"},
                           {"b.txt": "b\n", "CHANGELOG.md": "# changes\n- b\n"})
    code, ops = p.run("plan")
    api = ops[SYNC]
    assert code == 0 and api["status"] == "changed", api
    assert "would merge main: the merge is clean" in api["diff"]
    assert "SUMMARY" not in api["diff"] and "SUMMARY" in api["stdout"]  # for observe only
    assert p.heads()["public"]["main"] == one and p.heads()["internal"]["main"] == two
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 0 and api["status"] == "changed", api
    assert "resolved CHANGELOG.md in main with union" in api["diff"]
    assert "verified the merge of main: 'test -f a.txt && test -f b.txt' passed" in api["diff"]
    heads = p.heads()
    merged = heads["public"]["main"]
    assert heads["internal"]["main"] == heads["dr"]["main"] == merged
    parents = git("-C", str(tmp_path / "public" / "api.git"), "rev-list", "--parents", "-n1",
                  merged).split()[1:]
    assert parents == [one, two]  # public first: the policy's priority order
    changelog = git("-C", str(tmp_path / "public" / "api.git"), "show", f"{merged}:CHANGELOG.md")
    assert "- a" in changelog and "- b" in changelog
    code, ops = p.run()
    assert code == 0 and ops[SYNC]["status"] == "ok"  # the second run changes nothing


def test_a_failed_verify_or_a_conflict_pushes_nothing_and_names_the_files(tmp_path: Path) -> None:
    p = Project(tmp_path, extra=MERGE.format(verify="echo tests broke; exit 3"))
    _, one, two = diverged(p, {"a.txt": "a\n"}, {"b.txt": "b\n"})
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 2 and api["status"] == "failed"
    assert "verify failed main: 'echo tests broke; exit 3' exited 3: nothing pushed" in api["error"]
    assert "tests broke" in api["error"]
    heads = p.heads()
    assert (heads["public"]["main"], heads["internal"]["main"]) == (one, two)
    assert "main" not in heads["dr"] or heads["dr"]["main"] not in (one, two)
    p2 = Project(tmp_path / "conflict", extra=MERGE.format(verify="true"))
    _, one, two = diverged(p2, {"app.txt": "ours\n", "deps.lock": "v1\n"},
                           {"app.txt": "theirs\n", "deps.lock": "v2\n"})
    code, ops = p2.run()
    api = ops[SYNC]
    assert code == 2 and api["status"] == "failed"
    assert "conflict main: app.txt: nothing pushed" in api["error"]  # deps.lock: settled
    assert "++=======" in api["error"] and "+ theirs" in api["error"]  # its hunk
    heads = p2.heads()
    assert (heads["public"]["main"], heads["internal"]["main"]) == (one, two)
    worktrees = git("-C", str(tmp_path / "conflict" / "work" / "api.git"), "worktree", "list")
    assert len(worktrees.splitlines()) == 1  # the scratch worktree is gone
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    assert p2.run("apply", "--textfile-dir", str(metrics))[0] == 2  # the same conflict again
    prom = (metrics / "opsagent.prom").read_text()
    assert 'opsagent_sync_merges_total{host="@local",outcome="conflict",policy="repos",' \
        'repository="api"} 1.0' in prom  # counted once, not once per run
    assert 'opsagent_sync_conflict_since_timestamp_seconds{branch="main",host="@local",' \
        'policy="repos",repository="api",state="conflict"}' in prom
    report = json.loads(opsagent(tmp_path / "conflict", "report", "--format", "json",
                                 "--state-dir", str(tmp_path / "conflict" / "state")).stdout)
    assert [(f["subject"], f["state"]) for f in report["findings"]] == [("api main", "conflict")]
    assert report["findings"][0]["detail"] == (f"heads: dr {heads['dr']['main'][:10]}, internal "
                                               f"{two[:10]}, public {one[:10]}; files: app.txt")


def test_priority_resolution_and_a_conflict_a_person_resolved_once(tmp_path: Path) -> None:
    p = Project(tmp_path, extra=MERGE.format(verify="true"))
    base, one, two = diverged(p, {"app.txt": "ours\n", "deps.lock": "v1\n"},
                              {"app.txt": "theirs\n", "deps.lock": "v2\n"})
    # the same two changes on a release branch, not yet pushed there
    for remote in REMOTES:
        p.push(remote, base, "release/1")
    assert p.run()[0] == 2  # main conflicts on app.txt
    # a person merges main by hand, keeping both lines, and pushes it to public
    git("checkout", "-q", "--detach", one, cwd=p.clone)
    git("merge", "-q", "--no-edit", two, cwd=p.clone, check=False)
    (p.clone / "app.txt").write_text("ours and theirs\n")
    (p.clone / "deps.lock").write_text("v1\n")
    git("commit", "-q", "-am", "by hand", cwd=p.clone)
    p.push("public", git("rev-parse", "HEAD", cwd=p.clone), "main")
    # the same divergence comes again on release/1 (the changes cherry-picked there)
    git("checkout", "-q", "--detach", base, cwd=p.clone)
    git("cherry-pick", one, cwd=p.clone)
    p.push("public", git("rev-parse", "HEAD", cwd=p.clone), "release/1")
    git("checkout", "-q", "--detach", base, cwd=p.clone)
    git("cherry-pick", two, cwd=p.clone)
    p.push("internal", git("rev-parse", "HEAD", cwd=p.clone), "release/1")
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 0, (api["diff"], api.get("error"))
    assert "learned the resolution of merge" in api["diff"]
    assert "resolved app.txt in release/1 with rerere" in api["diff"]
    heads = p.heads()
    release = heads["public"]["release/1"]
    assert heads["internal"]["release/1"] == release
    shown = git("-C", str(tmp_path / "public" / "api.git"), "show", f"{release}:app.txt")
    assert shown == "ours and theirs"  # as the person resolved it
    assert heads["internal"]["main"] == heads["public"]["main"]  # main: fast-forwarded
