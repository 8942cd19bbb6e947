"""Pull mode: `opsagent daemon --pull GIT_URL#BRANCH` on a real git repository (file://)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.daemon import Daemon, wait_for

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: release}
targets: [all]
schedule: {every: 1s}
spec:
  tasks:
    - name: version
      server.shell: {commands: ["echo %(v)s > %(file)s"]}
      unless: "grep -qx %(v)s %(file)s"
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(repo: Path, text: str, message: str) -> str:
    (repo / "policies").mkdir(exist_ok=True)
    (repo / "policies" / "release.yml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_pull_mode_follows_fast_forwards_and_keeps_the_last_good_checkout(tmp_path: Path) -> None:
    upstream, agent, marker = tmp_path / "upstream", tmp_path / "agent", tmp_path / "version"
    upstream.mkdir()
    agent.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    first = commit(upstream, POLICY % {"v": "v1", "file": marker}, "v1")
    (agent / "agent.yml").write_text("state_dir: state\nlog_format: json\n"
                                     "pull: {url: 'file:///elsewhere#x', interval: 1s}\n")
    d = Daemon(agent, "--pull", f"file://{upstream}#main")  # --pull overrides the url only
    try:
        d.up()
        wait_for(lambda: marker.exists() and marker.read_text() == "v1\n", what="v1 converged")
        second = commit(upstream, POLICY % {"v": "v2", "file": marker}, "v2")
        wait_for(lambda: marker.read_text() == "v2\n", timeout=90, what="v2 pulled and converged")

        broken = commit(upstream, (POLICY % {"v": "v3", "file": marker}).replace("every", "evry"),
                        "broken")
        wait_for(lambda: d.count("reload_failed") >= 1, timeout=90, what="the broken commit refused")
        problem = next(e["message"] for e in d.events() if e.get("event") == "reload_problem")
        assert f"reload (pulled {broken[:12]}): " in problem
        assert problem.endswith("tasks 'release' > schedule.evry: unknown field 'evry'; "
                                "did you mean 'every'?")
        metrics = d.get("/metrics")[1]
        assert "opsagent_config_last_reload_successful 0.0" in metrics
        assert f'opsagent_pull_commit_info{{commit="{second}"}} 1.0' in metrics  # still in force
        assert marker.read_text() == "v2\n"  # the last good checkout keeps running

        git(upstream, "reset", "-q", "--hard", first)  # history rewritten: not a fast-forward
        commit(upstream, POLICY % {"v": "v9", "file": marker}, "rewritten")
        wait_for(lambda: d.count("pull_failed") >= 1, timeout=90, what="the force-push refused")
        failure = next(e["message"] for e in d.events() if e.get("event") == "pull_failed")
        assert "not a fast-forward, refused; keeping" in failure
        assert marker.read_text() == "v2\n"
    finally:
        assert d.stop() == 0


def test_a_bad_pull_url_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "agent.yml").write_text("state_dir: state\n")
    done = subprocess.run([sys.executable, "-m", "agent", "daemon", "-c", "agent.yml", "--pull",
                           "has space#main"], cwd=tmp_path, capture_output=True, text=True,
                          check=False, timeout=60)
    assert (done.returncode, done.stderr) == (
        1, "opsagent daemon: --pull: expected GIT_URL or GIT_URL#BRANCH, got 'has space#main'\n")
    assert not (tmp_path / "state").exists()


def pulled_project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An upstream repository with v1 of the policy, and an agent folder to pull it."""
    upstream, agent, marker = tmp_path / "upstream", tmp_path / "agent", tmp_path / "version"
    upstream.mkdir()
    agent.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    commit(upstream, POLICY % {"v": "v1", "file": marker}, "v1")
    (agent / "agent.yml").write_text("state_dir: state\nlog_format: json\n")
    return upstream, agent, marker


def silent_server() -> socket.socket:
    """A 'git server' on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


def test_a_hanging_git_server_holds_up_nothing(tmp_path: Path) -> None:
    upstream, agent, marker = pulled_project(tmp_path)
    first = Daemon(agent, "--pull", f"file://{upstream}#main")
    try:
        first.up()
        wait_for(lambda: marker.exists(), what="v1 converged")
    finally:
        assert first.stop() == 0
    # restarted against a server that never answers: it resumes the good commit at once
    server = silent_server()
    port = server.getsockname()[1]
    d = Daemon(agent, "--pull", f"http://127.0.0.1:{port}/policies.git#main")
    try:
        d.up()
        marker.unlink()
        wait_for(lambda: marker.exists(), what="a run of the good commit while fetching hangs")
        assert d.count("reload_ok") == 1
        for _ in range(3):
            assert d.get("/healthz")[0] == 200
            time.sleep(1)
        fetches = [p for p in children_of(d.proc.pid) if b"fetch" in p]
        assert fetches, "the fetch should still be hanging"
        started = time.monotonic()
    finally:
        assert d.stop() == 0
        server.close()
    assert time.monotonic() - started < 15  # SIGTERM did not wait for the fetch
    assert not [p for p in children_of(d.proc.pid) if b"fetch" in p]


def children_of(pid: int) -> list[bytes]:
    """Command lines of the processes whose parent is pid (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append((entry / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):
            continue
    return out


def test_a_commit_too_large_is_refused_and_pruned(tmp_path: Path) -> None:
    upstream, agent, marker = pulled_project(tmp_path)
    with (agent / "agent.yml").open("a") as config:  # fetch every second, not every minute
        config.write("pull: {url: 'file:///elsewhere#x', interval: 1s}\n")
    d = Daemon(agent, "--pull", f"file://{upstream}#main")
    try:
        d.up()
        wait_for(lambda: marker.exists(), what="v1 converged")
        before = du(agent / "state")
        (upstream / "blob.bin").write_bytes(os.urandom(70 * 1024 * 1024))
        big = commit(upstream, POLICY % {"v": "v2", "file": marker}, "a large file")
        failure = wait_for(lambda: [e["message"] for e in d.events()
                                    if e.get("event") == "pull_failed"], timeout=90,
                           what="the large commit refused")[0]
        assert f"{big[:12]}: its files add up to 70 MiB, more than 64 MiB: refused" in failure
        assert du(agent / "state") - before < 8 * 1024 * 1024  # what it brought was pruned
        assert marker.read_text() == "v1\n"  # the last good commit keeps running
        assert d.get("/healthz")[0] == 200
    finally:
        assert d.stop() == 0


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
