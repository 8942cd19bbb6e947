"""The sync kind on @local against real bare git repositories: remotes behind are
fast-forwarded (check mode pushes nothing), a diverged branch is reported and nothing is
pushed for it while the other repository syncs, a rewritten or deleted branch is not
propagated and its commits are kept, a remote that cannot be reached degrades only, and
every head replaced is saved first."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from tests.integration.conftest import requires_sshd
from tests.support import sshd
from tests.support.gitremotes import REMOTES, SYNC, Project, git
from tests.support.project import opsagent


def test_remotes_behind_are_fast_forwarded_after_a_check_that_pushes_nothing(
        tmp_path: Path) -> None:
    p = Project(tmp_path)
    one = p.commit("one")
    two = p.commit("two")
    p.push("public", two)
    p.push("internal", one)
    code, ops = p.run("plan")
    assert code == 0 and ops[SYNC]["status"] == "changed"
    assert f"would fast-forward main on internal: {one[:10]}..{two[:10]}" in ops[SYNC]["diff"]
    assert p.heads()["internal"] == {"main": one} and p.heads()["dr"] == {}  # nothing pushed
    code, ops = p.run()
    assert code == 0 and ops[SYNC]["status"] == "changed"
    assert p.heads() == {remote: {"main": two} for remote in REMOTES}
    backups = p.refs("refs/opsagent/backup/")
    assert list(backups.values()) == [one]  # internal's old head, saved before the push
    assert next(iter(backups)).endswith("/internal/heads/main")
    assert "web: " not in ops[SYNC]["diff"]  # empty everywhere: in step
    code, ops = p.run()
    assert code == 0 and {op["status"] for op in ops.values()} == {"ok"}


def test_a_diverged_branch_pushes_nothing_and_the_rest_still_syncs(tmp_path: Path) -> None:
    p = Project(tmp_path)
    base = p.commit("base")
    p.push("public", base)
    p.push("internal", base)
    ours = p.commit("ours")
    git("reset", "-q", "--hard", base, cwd=p.clone)
    theirs = p.commit("theirs")
    p.push("public", ours)
    p.push("internal", theirs)
    p.push("public", theirs, branch="feature")
    p.push("public", base, repo="web")
    code, ops = p.run()
    assert code == 2
    api = ops[SYNC]
    assert api["status"] == "failed"
    assert f"diverged main: public {ours[:10]}, internal {theirs[:10]}" in api["error"]
    heads = p.heads()
    assert (heads["public"]["main"], heads["internal"]["main"]) == (ours, theirs)
    assert "main" not in heads["dr"]  # nothing pushed for the diverged branch
    assert heads["internal"]["feature"] == heads["dr"]["feature"] == theirs  # the rest did
    assert f"web: fast-forwarded main on internal: {base[:10]}" in api["diff"]
    assert p.heads("web")["internal"] == {"main": base}
    audit = opsagent(tmp_path, "audit", "log", "--state-dir", str(tmp_path / "state")).stdout
    entry = next(line for line in audit.splitlines() if SYNC in line)
    assert "failed" in entry  # it pushed feature before it failed: on the record
    assert "fast-forwarded feature on internal" in api["diff"]


def test_a_rewritten_or_deleted_branch_is_not_propagated_and_its_commits_are_kept(
        tmp_path: Path) -> None:
    p = Project(tmp_path)
    one = p.commit("one")
    two = p.commit("two")
    for remote in REMOTES:
        p.push(remote, two)
        p.push(remote, two, branch="old")
    assert p.run()[0] == 0
    p.push("internal", one)  # history rewritten: two dropped there
    git("push", "-q", str(tmp_path / "public" / "api.git"), ":refs/heads/old", cwd=p.clone)
    assert p.run("plan")[0] == 2  # says so, and leaves the apply to see it too
    code, ops = p.run()
    assert code == 2
    api = ops[SYNC]
    assert f"rewritten main on internal: {two[:10]} was replaced by {one[:10]}" in api["error"]
    assert "kept old: deleted on public, kept on the others" in api["stdout"]
    heads = p.heads()
    assert heads["public"]["main"] == two and heads["internal"]["main"] == one
    assert "old" not in heads["public"] and heads["internal"]["old"] == two
    kept = p.refs("refs/opsagent/kept/")
    assert sorted(kept.values()) == [two, two]  # main as internal had it, old as public had it
    assert "LOST" not in api["diff"]


def test_propagated_deletions_and_an_unreachable_remote(tmp_path: Path) -> None:
    p = Project(tmp_path, deletions="propagate")
    one = p.commit("one")
    for remote in REMOTES:
        p.push(remote, one)
        p.push(remote, one, branch="topic")
    assert p.run()[0] == 0
    git("push", "-q", str(tmp_path / "public" / "api.git"), ":refs/heads/topic", cwd=p.clone)
    code, ops = p.run()
    assert code == 0 and ops[SYNC]["status"] == "changed"
    assert all("topic" not in heads for heads in p.heads().values())
    assert set(p.refs("refs/opsagent/backup/").values()) == {one}  # saved before deleting
    two = p.commit("two")
    p.push("public", two)
    (tmp_path / "internal" / "api.git").rename(tmp_path / "internal" / "gone.git")
    code, ops = p.run()
    assert code == 0  # degraded: a warning, not a failure
    api = ops[SYNC]
    assert api["status"] == "changed" and api["warning"].startswith("exit code 2 (warning): api: "
                                                                      "unreachable internal: ")
    assert git("ls-remote", "--heads", str(tmp_path / "dr" / "api.git")).split()[0] == two


def test_rollback_puts_the_remotes_back_and_refuses_to_overwrite_a_moved_branch(
        tmp_path: Path) -> None:
    p = Project(tmp_path)
    one = p.commit("one")
    two = p.commit("two")
    p.push("public", two)
    p.push("internal", one)
    p.push("internal", one, branch="dev")
    p.push("public", one, branch="dev")
    code, ops = p.run()
    assert code == 0
    run = re.search(r"saved as run (\S+)", ops[SYNC]["diff"])
    assert run is not None
    assert p.heads()["internal"]["main"] == two
    developer = p.commit("a developer's")
    p.push("internal", developer, branch="main")  # moved since the sync
    args = ("p.yml", "-i", "@local", "--state-dir", str(tmp_path / "state"), "--run", run[1],
            "--repo", "api")
    shown = opsagent(tmp_path, "sync", "rollback", "repos", *args, "--check")
    assert shown.returncode == 0, shown.stderr
    assert f"would put back the heads run {run[1]} replaced in api" in shown.stdout
    assert p.heads()["dr"] == {"main": two, "dev": one}  # check mode: nothing put back
    done = opsagent(tmp_path, "sync", "rollback", "repos", *args)
    heads = p.heads()
    assert heads["dr"] == {}  # as the run found it: the branches it made there are gone
    assert heads["public"] == {"main": two, "dev": one}  # the run did not change it
    assert heads["internal"]["main"] == developer  # the developer's stays: the lease refused
    assert done.returncode == 2, done.stdout
    assert "push to internal failed, nothing changed there" in done.stderr
    assert p.run()[0] == 0  # the next sync takes the developer's commit everywhere
    again = opsagent(tmp_path, "sync", "rollback", "repos", *args)
    assert again.returncode == 2
    assert f"main on internal moved since run {run[1]}" in again.stderr
    assert p.heads()["internal"]["main"] == p.heads()["dr"]["main"] == developer  # kept
    history = opsagent(tmp_path, "history", "--state-dir", str(tmp_path / "state")).stdout
    assert "sync rollback" in history
    bad = opsagent(tmp_path, "sync", "rollback", "repos", *args[:-4], "--run", "yesterday")
    assert bad.returncode == 1 and "expected a run as its output named it" in bad.stderr


@requires_sshd
def test_ssh_remotes_with_the_policys_key_which_reaches_no_output(
        tmp_path: Path, keys: sshd.Keys, servers: list[sshd.Sshd]) -> None:
    user = getpass.getuser()
    p = Project(tmp_path)  # its remotes, reached here over SSH as one and two
    head = p.commit("one")
    p.push("public", head)
    port = servers[0].port
    (tmp_path / "p.yml").write_text(
        "apiVersion: opsagent/v1\nkind: sync\nmetadata: {name: over-ssh}\ntargets: ['@local']\n"
        f"spec:\n  workdir: {tmp_path}/work\n  remotes:\n"
        f"    - {{name: one, url: 'ssh://{user}@127.0.0.1:{port}{tmp_path}/public/{{repo}}.git'}}\n"
        f"    - {{name: two, url: 'ssh://{user}@127.0.0.1:{port}{tmp_path}/internal/{{repo}}.git'}}\n"
        f"  repositories: [api]\n  ssh_key: {{file: {keys.client}}}\n"
        f"  known_hosts: {keys.known_hosts}\n")
    done = opsagent(tmp_path, "apply", "p.yml", "-i", "@local", "--json", "--diff",
                    "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert p.heads()["internal"] == {"main": head}
    secret = keys.client.read_text().splitlines()[1]  # a line of the private key
    assert secret not in done.stdout + done.stderr
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()
    assert not list((tmp_path / "work").rglob("key"))  # the private file went with the run
