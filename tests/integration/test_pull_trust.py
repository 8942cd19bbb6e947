"""Pull mode as an attacker sees it: a token in the URL kept out of `ps` and the logs, a
warning for plain http://, and only commits signed by a trusted key ever run."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from tests.integration.test_pull import POLICY, commit, git
from tests.support.daemon import Daemon, wait_for
from tests.support.githttp import GitHttp

TOKEN = "ghp-TOKEN-abc123-never-shown"


def cmdlines(root: int) -> list[str]:
    """The command lines of `root` and every process below it (not the whole machine's:
    whatever else runs here, a CI runner with this text in its arguments, is not ours)."""
    parents, lines = {}, {}
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            lines[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue
        parents[int(proc.name)] = int(stat.rpartition(")")[2].split()[1])
    out = []
    for pid, line in lines.items():
        up = pid
        while up > 1 and up != root:
            up = parents.get(up, 1)
        if up == root:
            out.append(line.decode(errors="replace"))
    return out


def test_a_token_in_the_url_reaches_git_but_never_ps_or_the_logs(tmp_path: Path) -> None:
    upstream, agent, marker = tmp_path / "upstream", tmp_path / "agent", tmp_path / "version"
    upstream.mkdir()
    agent.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    commit(upstream, POLICY % {"v": "v1", "file": marker}, "v1")
    server = GitHttp(tmp_path, "deploy", TOKEN, delay=0.3)
    url = f"http://deploy:{TOKEN}@127.0.0.1:{server.port}/upstream/.git#main"
    (agent / "agent.yml").write_text(f"state_dir: state\nlog_format: json\n"
                                     f"pull: {{url: '{url}', interval: 1s}}\n")
    seen: list[str] = []
    done = threading.Event()
    d = Daemon(agent)

    def watch() -> None:
        while not done.is_set():
            seen.extend(line for line in cmdlines(d.proc.pid) if "git" in line)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        d.up()
        wait_for(lambda: marker.exists(), timeout=60, what="v1 pulled with the token")
    finally:
        done.set()
        watcher.join()
        assert d.stop() == 0
        server.close()
    fetches = [line for line in seen if " fetch " in line]
    assert fetches and all(f"http://127.0.0.1:{server.port}/upstream/.git" in f for f in fetches)
    assert not [line for line in seen if TOKEN in line]
    warning = next(e["message"] for e in d.events() if e.get("event") == "pull_insecure")
    assert warning.startswith(f"pull: http://127.0.0.1:{server.port}/upstream/.git is fetched "
                              "unencrypted and unauthenticated")
    leaked = [p for p in agent.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()
              and p.name != "agent.yml"]
    assert leaked == []


def test_a_wrong_token_fails_the_pull_without_showing_it(tmp_path: Path) -> None:
    upstream, agent = tmp_path / "upstream", tmp_path / "agent"
    upstream.mkdir()
    agent.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    commit(upstream, POLICY % {"v": "v1", "file": tmp_path / "v"}, "v1")
    server = GitHttp(tmp_path, "deploy", "the-right-one")
    (agent / "token").write_text(TOKEN + "\n")
    (agent / "agent.yml").write_text(
        "state_dir: state\nlog_format: json\npull:\n"
        f"  url: 'http://127.0.0.1:{server.port}/upstream/.git#main'\n  interval: 1s\n"
        f"  username: deploy\n  password: {{file: {agent / 'token'}}}\n")
    d = Daemon(agent)
    try:
        d.up()
        wait_for(lambda: d.count("pull_failed") >= 1, timeout=60, what="the pull refused")
    finally:
        assert d.stop() == 0
        server.close()
    failure = next(e["message"] for e in d.events() if e.get("event") == "pull_failed")
    assert f"git fetch http://127.0.0.1:{server.port}/upstream/.git: " in failure
    assert TOKEN not in d.log_path.read_text() and not (tmp_path / "v").exists()


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def signed_commit(repo: Path, text: str, message: str, key: Path | None) -> str:
    (repo / "policies").mkdir(exist_ok=True)
    (repo / "policies" / "release.yml").write_text(text)
    git(repo, "add", "-A")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-S"] if key \
        else ["commit"]
    git(repo, *sign, "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_only_commits_signed_by_a_trusted_key_run(tmp_path: Path) -> None:
    upstream, agent, marker = tmp_path / "upstream", tmp_path / "agent", tmp_path / "version"
    upstream.mkdir()
    agent.mkdir()
    trusted, trusted_pub = keypair(tmp_path, "trusted")
    other, _ = keypair(tmp_path, "other")
    git(upstream, "init", "-q", "-b", "main")
    signed_commit(upstream, POLICY % {"v": "v1", "file": marker}, "v1", trusted)
    (agent / "agent.yml").write_text(
        "state_dir: state\nlog_format: json\npull:\n"
        f"  url: 'file://{upstream}#main'\n  interval: 1s\n"
        f"  verify: {{signed_by: ['{trusted_pub}']}}\n")
    d = Daemon(agent)
    try:
        d.up()
        wait_for(lambda: marker.exists() and marker.read_text() == "v1\n", timeout=60,
                 what="the signed v1 converged")
        for n, key in enumerate((None, other), start=1):
            bad = signed_commit(upstream, POLICY % {"v": f"v-evil{n}", "file": marker}, "evil", key)
            def refused(n: int = n) -> bool:
                return d.count("pull_failed") >= n

            wait_for(refused, timeout=60, what="the untrusted commit refused")
            failure = [e["message"] for e in d.events() if e.get("event") == "pull_failed"][-1]
            assert f"{bad[:12]}: not signed by a trusted key (pull.verify.signed_by): " \
                   "refused; keeping" in failure
            assert marker.read_text() == "v1\n"
        signed_commit(upstream, POLICY % {"v": "v2", "file": marker}, "v2", trusted)
        wait_for(lambda: marker.read_text() == "v2\n", timeout=60, what="the signed v2 ran")
    finally:
        assert d.stop() == 0
