"""The daemon's push webhook for sync policies: a call signed with the shared secret
(X-Hub-Signature-256, as GitHub and Gitea sign) starts the sync at once, so a push reaches
every remote in seconds, not at the next hourly run; an unsigned, wrongly signed or
replayed call gets 401, is logged and starts nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.daemon import Daemon, wait_for
from tests.support.gitremotes import Project

SECRET = b"s3cret-shared-with-the-forge"


def post(daemon: Daemon, path: str, body: bytes, signature: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}", data=body,
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def signed(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_a_signed_push_webhook_syncs_at_once_and_bad_calls_are_refused(tmp_path: Path) -> None:
    p = Project(tmp_path)
    policy = tmp_path / "p.yml"
    policy.write_text(policy.read_text().replace('targets: ["@local"]\n',
                                                 'targets: ["@local"]\nschedule: {every: 1h}\n'))
    (tmp_path / "secret").write_text(SECRET.decode() + "\n")
    (tmp_path / "agent.yml").write_text("policies: [p.yml]\nstate_dir: state\n"
                                        "webhooks: {secret: {file: secret}}\n")
    one = p.commit("one")
    p.push("public", one)
    daemon = Daemon(tmp_path)
    try:
        daemon.up()
        wait_for(lambda: daemon.count("run_finished") == 1, what="the first run")
        assert p.heads()["internal"] == {"main": one}
        two = p.commit("two")
        p.push("public", two)  # a developer's push; the forge calls the hook
        body = json.dumps({"ref": "refs/heads/main", "after": two,
                           "repository": {"name": "api", "full_name": "org/api"}}).encode()
        for bad, why in ((None, "not signed"), (signed(body, b"guess"), "wrong signature"),
                         (signed(body + b" "), "wrong signature")):
            code, text = post(daemon, "/hooks/sync/repos", body, bad)
            assert code == 401 and why in text, (code, text)
        assert post(daemon, "/hooks/sync/nope", body, signed(body))[0] == 404
        code, text = post(daemon, "/hooks/sync/repos", body, signed(body))
        assert code == 202 and text == "sync repos starts now (org/api pushed)\n"
        wait_for(lambda: p.heads()["internal"] == {"main": two}, timeout=20,
                 what="the push on every remote")
        wait_for(lambda: daemon.count("run_finished") == 2, what="the hooked run's end")
        code, text = post(daemon, "/hooks/sync/repos", body, signed(body))
        assert code == 401 and "replayed" in text
        refused = [e for e in daemon.events() if e.get("event") == "webhook_refused"]
        assert len(refused) == 5 and all(e["client"] == "127.0.0.1" for e in refused)
        assert daemon.count("run_started") == 2  # refused calls started nothing
        assert SECRET.decode() not in daemon.log_path.read_text()
    finally:
        assert daemon.stop() == 0
    restarted = Daemon(tmp_path)  # a restart remembers what it accepted
    try:
        restarted.up()
        assert post(restarted, "/hooks/sync/repos", body, signed(body))[0] == 401
    finally:
        restarted.stop()


def test_without_a_secret_there_is_no_hook(tmp_path: Path) -> None:
    Project(tmp_path)
    (tmp_path / "agent.yml").write_text("policies: [p.yml]\nstate_dir: state\n")
    daemon = Daemon(tmp_path)
    try:
        daemon.up()
        body = b"{}"
        code, _ = post(daemon, "/hooks/sync/repos", body, signed(body))
        assert code == 405  # only GET and HEAD: no endpoint takes a write
    finally:
        daemon.stop()
