"""The sync kind across real hosts: h3 keeps the repositories of h1 (bare repositories of a
`git` user) and h2 (gitolite3, whose `info` lists them: discover) in step over SSH with
the policy's key. A divergence is merged and verified on h3, a conflict or a failed
verify pushes nothing and is reported, a rollback puts both servers back, and a remote
cut off degrades the run while the rest still syncs. A developer's push that races the
sync, and a server cut off between the sync's fetch and its push, move no branch anywhere.
The daemon's signed push webhook brings a push to the other server in seconds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet, faults
from tests.integration.test_sync_webhook import SECRET, post, signed
from tests.support.daemon import Daemon, wait_for

pytestmark = pytest.mark.fleet
SYNC = "sync repositories"
CHECKS = "test -f a.txt && test -f b.txt"
# while /srv/hold exists on h3 the verify says so and waits: the window between the
# sync's fetch and its push, in which the tests race it or cut a server off
VERIFY = CHECKS + " && if [ -e /srv/hold ]; then touch /srv/verifying; sleep 6; fi"
POLICY = """\
apiVersion: opsagent/v1
kind: sync
metadata: {{name: forges}}
targets: [h3]
spec:
  workdir: /var/lib/opsagent/sync
  remotes:
    - {{name: public, url: "ssh://git@{h1}/srv/git/public/{{repo}}.git"}}
    - {{name: internal, url: "ssh://gitolite3@{h2}/{{repo}}.git"}}
  discover: {{remote: internal, exclude: [gitolite-admin, testing]}}
  branches:
    - {{match: main, strategy: merge, verify: "{verify}"}}
    - {{match: "*"}}
  retries: 0
  ssh_key: {{file: {key}}}
  known_hosts: /etc/opsagent/known_hosts
"""


class Forges:
    def __init__(self, root: Path, fleet: Fleet) -> None:
        self.root, self.fleet = root, fleet
        self.key = root / "sync_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                       check=True)
        self.urls = {"public": f"ssh://git@{fleet.host('h1').address}/srv/git/public/{{}}.git",
                     "internal": f"ssh://gitolite3@{fleet.host('h2').address}/{{}}.git"}
        (root / "policies").mkdir()
        (root / "policies" / "sync.yml").write_text(POLICY.format(
            h1=fleet.host("h1").address, h2=fleet.host("h2").address, key=self.key,
            verify=VERIFY))
        self.clone = root / "clone"
        self.git("init", "-q", "-b", "main", str(self.clone))

    def git(self, *args: str, cwd: Path | None = None) -> str:
        ssh = (f"ssh -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes "
               f"-o UserKnownHostsFile={self.fleet.known_hosts} -o StrictHostKeyChecking=yes")
        env = {"GIT_SSH_COMMAND": ssh, "PATH": "/usr/bin:/bin", "HOME": str(self.root),
               "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.org",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.org"}
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              check=True, timeout=120)
        return done.stdout.strip()

    def change(self, files: dict[str, str], on: str = "", repo: str = "api") -> str:
        if on:
            for url in self.urls.values():  # the merges made on h3 too
                self.git("fetch", "-q", url.format(repo), f"+refs/heads/*:refs/seen/{repo}/*",
                         cwd=self.clone)
            self.git("checkout", "-q", "--detach", on, cwd=self.clone)
        for name, text in files.items():
            (self.clone / name).write_text(text)
        self.git("add", "-A", cwd=self.clone)
        self.git("commit", "-q", "-m", ", ".join(files), cwd=self.clone)
        return self.git("rev-parse", "HEAD", cwd=self.clone)

    def push(self, remote: str, sha: str, repo: str = "api") -> None:
        self.git("push", "-q", "--force", self.urls[remote].format(repo), f"{sha}:refs/heads/main",
                 cwd=self.clone)

    def head(self, remote: str, repo: str = "api") -> str:
        listed = self.git("ls-remote", self.urls[remote].format(repo), "refs/heads/main")
        return listed.split()[0] if listed else ""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", *args, "-i",
                               str(self.fleet.inventory), "--state-dir", str(self.root / "state")],
                              cwd=self.root, capture_output=True, text=True, timeout=600)

    def apply(self) -> tuple[int, dict[str, Any]]:
        proc = self.run("apply", "policies", "--json", "--diff", "--timeout", "5")
        [host] = json.loads(proc.stdout)["hosts"]
        return proc.returncode, {op["name"]: op for op in host["ops"]}[SYNC]


@pytest.fixture
def forges(fleet: Fleet, tmp_path: Path) -> Iterator[Forges]:
    for name in ("h1", "h2", "h3"):
        fleet.reset(name)
    made = Forges(tmp_path, fleet)
    pub = made.key.with_suffix(".pub").read_text().strip()
    fleet.run("h1", "useradd -m -s /bin/sh -p '*' git && install -d -o git /srv/git/public && "
                    "for r in api web; do su git -c \"git init -q --bare /srv/git/public/$r.git\"; "
                    f"done && install -d -o git -m 700 ~git/.ssh && echo '{pub}' > "
                    "~git/.ssh/authorized_keys && chown git ~git/.ssh/authorized_keys")
    # what the gitolite3 package's postinst does when given an admin key
    fleet.run("h2", "useradd -r -m -d /var/lib/gitolite3 -s /bin/sh -p '*' gitolite3 && "
                    f"echo '{pub}' > /tmp/admin.pub && "
                    "su -s /bin/sh gitolite3 -c 'cd && gitolite setup -pk /tmp/admin.pub' && "
                    "printf 'repo api web\\n    RW+ = admin\\n' >> "
                    "~gitolite3/.gitolite/conf/gitolite.conf && "
                    "su -s /bin/sh gitolite3 -c 'cd && gitolite setup'")
    fleet.run("h3", "mkdir -p /etc/opsagent")
    fleet.host("h3").path("/etc/opsagent/known_hosts").write_text(fleet.known_hosts.read_text())
    yield made


def test_discover_merge_conflict_cut_off_and_rollback_across_servers(
        forges: Forges, fleet: Fleet) -> None:
    base = forges.change({"app.txt": "app\n"})
    forges.push("public", base)
    forges.push("public", base, repo="web")
    code, op = forges.apply()
    assert code == 0, op
    assert "discover: 2 repositories on internal: api, web" in op["stdout"]
    assert forges.head("internal") == forges.head("internal", "web") == base  # over gitolite

    one = forges.change({"a.txt": "a\n"}, on=base)
    two = forges.change({"b.txt": "b\n"}, on=base)
    forges.push("public", one)
    forges.push("internal", two)
    code, op = forges.apply()
    assert code == 0, op
    assert f"verified the merge of main: '{VERIFY}' passed" in op["diff"]
    merged = forges.head("public")
    assert forges.head("internal") == merged not in (one, two)
    run = re.search(r"saved as run (\S+)", op["diff"])
    assert run is not None
    back = forges.run("sync", "rollback", "forges", "policies", "--run", run[1], "--repo", "api")
    assert back.returncode == 0, back.stdout + back.stderr
    assert (forges.head("public"), forges.head("internal")) == (one, two)  # as it found them
    code, op = forges.apply()
    merged = forges.head("public")
    assert code == 0 and forges.head("internal") == merged not in (one, two)

    ours = forges.change({"app.txt": "ours\n"}, on=merged)
    theirs = forges.change({"app.txt": "theirs\n"}, on=merged)
    forges.push("public", ours)
    forges.push("internal", theirs)
    code, op = forges.apply()
    assert code == 2 and op["status"] == "failed"
    assert "api: conflict main: app.txt: nothing pushed" in op["error"]
    assert (forges.head("public"), forges.head("internal")) == (ours, theirs)
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "agent", "report", "--format", "json", "--state-dir",
         str(forges.root / "state")], capture_output=True, text=True, check=True).stdout)
    assert [(f["host"], f["subject"], f["state"]) for f in report["findings"]] == [
        ("h3", "api main", "conflict")]

    web = forges.change({"web.txt": "w\n"}, on=base)
    forges.push("internal", web, repo="web")
    with faults.cut_off(fleet, "h1"):
        code, op = forges.apply()
    assert op["warning"] or op["status"] == "failed", op
    assert "web: unreachable public" in op["error"] + op["warning"]
    assert forges.head("public", "web") == base  # h1 was away: nothing there
    code, op = forges.apply()
    assert forges.head("public", "web") == web  # back: synced

    left = forges.change({"c.txt": "c\n"}, on=web, repo="web")
    right = forges.change({"d.txt": "d\n"}, on=web, repo="web")
    forges.push("public", left, repo="web")
    forges.push("internal", right, repo="web")
    code, op = forges.apply()
    assert f"web: verify failed main: '{VERIFY}' exited 1" in op["error"]
    assert (forges.head("public", "web"), forges.head("internal", "web")) == (left, right)


def test_a_raced_push_and_a_server_cut_off_before_the_push_move_no_branch(
        forges: Forges, fleet: Fleet) -> None:
    base = forges.change({"app.txt": "app\n"})
    forges.push("public", base)
    assert forges.apply()[0] == 0 and forges.head("internal") == base
    h3 = fleet.host("h3")

    def held(during: Any) -> tuple[int, dict[str, Any]]:
        """An apply whose verify waits while `during` runs; its result."""
        (h3.path("/srv/verifying")).unlink(missing_ok=True)
        h3.path("/srv/hold").write_text("")
        with ThreadPoolExecutor(1) as pool:
            applied = pool.submit(forges.apply)
            deadline = time.monotonic() + 120
            while not h3.path("/srv/verifying").exists():
                assert time.monotonic() < deadline and not applied.done(), "no verify began"
                time.sleep(0.1)
            during()
            h3.path("/srv/hold").unlink()
            return applied.result()

    one = forges.change({"a.txt": "a\n"}, on=base)
    two = forges.change({"b.txt": "b\n"}, on=base)
    forges.push("public", one)
    forges.push("internal", two)
    developer = forges.change({"a.txt": "a developer's\n"}, on=one)
    code, op = held(lambda: forges.push("public", developer))
    assert code == 2 and "push to public failed, nothing changed there" in op["error"], op
    assert "rolled back main on internal" in op["diff"]
    assert (forges.head("public"), forges.head("internal")) == (developer, two)  # both kept
    code, op = forges.apply()
    merged = forges.head("public")
    assert code == 0 and forges.head("internal") == merged
    forges.git("fetch", "-q", forges.urls["public"].format("api"), "main", cwd=forges.clone)
    forges.git("merge-base", "--is-ancestor", developer, merged, cwd=forges.clone)

    three = forges.change({"a.txt": "a3\n"}, on=merged)
    four = forges.change({"b.txt": "b4\n"}, on=merged)
    forges.push("public", three)
    forges.push("internal", four)
    try:
        code, op = held(lambda: faults.cut(fleet, "h1"))  # fetched, then h1 goes away
        assert forges.head("internal") == four  # the merge is on neither
    finally:
        faults.restore(fleet, "h1")
    assert code == 2 and "push to public failed" in op["error"], op
    assert forges.head("public") == three
    code, op = forges.apply()
    assert code == 0 and forges.head("public") == forges.head("internal") not in (three, four)


def test_a_signed_push_webhook_reaches_the_other_server_in_seconds(
        forges: Forges, fleet: Fleet) -> None:
    policy = forges.root / "policies" / "sync.yml"
    policy.write_text(policy.read_text().replace("targets: [h3]\n",
                                                 "targets: [h3]\nschedule: {every: 1h}\n"))
    (forges.root / "secret").write_text(SECRET.decode())
    (forges.root / "agent.yml").write_text(
        f"policies: [policies]\ninventory: {fleet.inventory}\nstate_dir: state\n"
        "log_format: json\nwebhooks: {secret: {file: secret}}\n")
    base = forges.change({"app.txt": "app\n"})
    forges.push("public", base)
    daemon = Daemon(forges.root)
    try:
        daemon.up()
        wait_for(lambda: daemon.count("run_finished") == 1, timeout=120, what="the first run")
        assert forges.head("internal") == base
        pushed = forges.change({"app.txt": "pushed\n"}, on=base)
        forges.push("public", pushed)
        body = json.dumps({"ref": "refs/heads/main", "after": pushed,
                           "repository": {"name": "api", "full_name": "org/api"}}).encode()
        assert post(daemon, "/hooks/sync/forges", body, signed(body, b"guess"))[0] == 401
        started = time.monotonic()
        assert post(daemon, "/hooks/sync/forges", body, signed(body))[0] == 202
        wait_for(lambda: forges.head("internal") == pushed, timeout=60,
                 what="the push on the other server")
        print(f"webhook to the push on gitolite: {time.monotonic() - started:.2f} s")
        wait_for(lambda: daemon.count("run_finished") == 2, what="the hooked run's end")
        assert post(daemon, "/hooks/sync/forges", body, signed(body))[0] == 401  # replayed
        assert daemon.count("run_started") == 2
    finally:
        assert daemon.stop() == 0
