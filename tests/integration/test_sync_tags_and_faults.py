"""The sync kind's tags, and its faults kept small: a tag a remote lacks is pushed, one that
differs is reported or set by priority (the old one saved and bundled); a branch whose
push a remote refused is put back on the remotes it reached; a fetch the network broke is
retried; old snapshots are pruned, never the newest; a gitolite remote that cannot be
asked for its repositories degrades the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.gitremotes import ENV, JOB, REMOTES, SYNC, Project, git, host_program


def test_tags_are_pushed_and_a_tag_that_differs_is_reported_or_set_by_priority(
        tmp_path: Path) -> None:
    p = Project(tmp_path)
    one = p.commit("one")
    for remote in REMOTES:
        p.push(remote, one)
    git("tag", "-a", "-m", "release 1", "v1", one, cwd=p.clone)
    git("push", "-q", str(tmp_path / "public" / "api.git"), "v1", cwd=p.clone)
    stray = p.commit("only tagged")  # on no branch: the tag alone holds it
    git("push", "-q", str(tmp_path / "internal" / "api.git"), f"{stray}:refs/tags/v2",
        cwd=p.clone)
    git("push", "-q", str(tmp_path / "public" / "api.git"), f"{one}:refs/tags/v2", cwd=p.clone)
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 2 and api["status"] == "failed"
    assert f"tag conflict v2: public {one[:10]}, internal {stray[:10]}" in api["error"]
    assert "pushed tag v1 on internal" in api["diff"] and "pushed tag v1 on dr" in api["diff"]
    annotated = git("ls-remote", str(tmp_path / "public" / "api.git"), "refs/tags/v1").split()[0]
    for remote in REMOTES:
        tags = git("ls-remote", "--tags", str(tmp_path / remote / "api.git"))
        assert f"{annotated}\trefs/tags/v1" in tags  # the tag object itself, not its commit
    assert git("ls-remote", str(tmp_path / "internal" / "api.git"), "refs/tags/v2").startswith(stray)
    with (tmp_path / "p.yml").open("a") as policy:
        policy.write("  tags: {on_conflict: priority}\n")
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 0, api
    assert f"moved tag v2 on internal: {stray[:10]}..{one[:10]}" in api["diff"]
    for remote in REMOTES:
        assert git("ls-remote", str(tmp_path / remote / "api.git"), "refs/tags/v2").startswith(one)
    bundles = list((tmp_path / "work" / "bundles" / "api").glob("*.bundle"))
    assert len(bundles) == 1  # what only the old v2 held, outside the mirror too
    listed = git("bundle", "list-heads", str(bundles[0]), cwd=tmp_path / "work" / "api.git")
    assert stray in listed


def test_a_branch_a_remote_refused_is_put_back_on_the_remotes_it_reached(tmp_path: Path) -> None:
    p = Project(tmp_path)
    one = p.commit("one")
    two = p.commit("two")
    p.push("public", two)
    p.push("internal", one)
    p.push("dr", one)
    hook = tmp_path / "internal" / "api.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'internal is read-only today' >&2\nexit 1\n")
    hook.chmod(0o755)
    code, ops = p.run()
    api = ops[SYNC]
    assert code == 2 and api["status"] == "failed"
    assert "push to internal failed, nothing changed there" in api["error"]
    assert f"rolled back main on dr: {two[:10]}..{one[:10]}" in api["diff"]
    heads = p.heads()
    assert (heads["internal"]["main"], heads["dr"]["main"]) == (one, one)  # on none of them
    hook.unlink()
    code, ops = p.run()
    assert code == 0 and all(h["main"] == two for h in p.heads().values())


def test_a_fetch_the_network_broke_is_retried(tmp_path: Path) -> None:
    for remote in ("a", "b"):
        git("init", "-q", "--bare", str(tmp_path / remote / "r.git"))
    clone = tmp_path / "clone"
    git("init", "-q", str(clone))
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=clone)
    git("push", "-q", str(tmp_path / "a" / "r.git"), "HEAD:refs/heads/main", cwd=clone)
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "git"  # git whose first fetch fails as a refused connection
    wrapper.write_text(
        "#!/bin/sh\n"
        f"if [ \"$3\" = fetch ] && [ ! -e {tmp_path}/failed ]; then touch {tmp_path}/failed; "
        "echo \"ssh: connect to host h1 port 22: Connection refused\" >&2; exit 128; fi\n"
        "exec /usr/bin/git \"$@\"\n")
    wrapper.chmod(0o755)
    job = {**JOB, "repos": ["r"], "workdir": str(tmp_path / "work"), "run": "20261203T000000Z",
           "retries": 2, "retry_wait": 0,
           "remotes": [{"name": r, "url": str(tmp_path / r / "{repo}.git"), "push_only": False}
                       for r in ("a", "b")]}
    done = subprocess.run([*host_program(tmp_path), json.dumps(job)], capture_output=True,
                          text=True, check=False,
                          env={**ENV, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "retrying git fetch in 0s: ssh: connect to host h1 port 22: Connection refused" in done.stdout
    assert "main" in git("ls-remote", "--heads", str(tmp_path / "b" / "r.git"))


def test_old_snapshots_are_pruned_but_never_the_newest(tmp_path: Path) -> None:
    for remote in ("a", "b"):
        git("init", "-q", "--bare", str(tmp_path / remote / "r.git"))
    clone = tmp_path / "clone"
    git("init", "-q", str(clone))
    job = {**JOB, "repos": ["r"], "workdir": str(tmp_path / "work"), "keep_snapshots": 86400,
           "remotes": [{"name": r, "url": str(tmp_path / r / "{repo}.git"), "push_only": False}
                       for r in ("a", "b")]}
    sync = host_program(tmp_path)
    runs = ("20200101T000000Z", "20200102T000000Z", "20200103T000000Z")
    for run in runs:  # three old runs, each fast-forwarding b
        git("commit", "-q", "--allow-empty", "-m", run, cwd=clone)
        git("push", "-q", str(tmp_path / "a" / "r.git"), "HEAD:refs/heads/main", cwd=clone)
        done = subprocess.run([*sync, json.dumps({**job, "run": run})], capture_output=True,
                              text=True, env=ENV, check=False)
        assert done.returncode == 0, done.stderr
    assert "pruned the snapshots of 1 run(s)" in done.stdout
    saved = git("for-each-ref", "--format=%(refname)", "refs/opsagent/pushed/",
                cwd=tmp_path / "work" / "r.git").splitlines()
    assert saved == [f"refs/opsagent/pushed/{runs[-1]}/b/heads/main"]  # old, but the newest


def test_a_gitolite_remote_that_cannot_be_asked_degrades_and_the_listed_ones_sync(
        tmp_path: Path) -> None:
    for remote in ("a", "b"):
        git("init", "-q", "--bare", str(tmp_path / remote / "r.git"))
    clone = tmp_path / "clone"
    git("init", "-q", str(clone))
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=clone)
    git("push", "-q", str(tmp_path / "a" / "r.git"), "HEAD:refs/heads/main", cwd=clone)
    job = {**JOB, "repos": ["r"], "workdir": str(tmp_path / "work"), "run": "20261203T000000Z",
           "discover": {"remote": "forge", "match": ["*"], "exclude": []},
           "remotes": [{"name": "a", "url": str(tmp_path / "a" / "{repo}.git"), "push_only": False},
                       {"name": "b", "url": str(tmp_path / "b" / "{repo}.git"), "push_only": False},
                       {"name": "forge", "url": "ssh://git@127.0.0.1:1/{repo}.git",
                        "push_only": True}]}  # nothing listens on port 1
    done = subprocess.run([*host_program(tmp_path), json.dumps(job)], capture_output=True,
                          text=True, env=ENV, check=False)
    assert done.returncode == 2, done.stdout + done.stderr  # degraded, not failed
    assert "discover: cannot list the repositories of forge: " in done.stderr
    assert "main" in git("ls-remote", "--heads", str(tmp_path / "b" / "r.git"))
