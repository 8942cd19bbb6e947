"""POST /hooks/sync/POLICY: a forge's push webhook starts a sync policy's run at once.

The body must be signed as GitHub, Gitea and Forgejo sign theirs: the header
X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the body with the secret
shared with the forge (webhooks.secret in agent.yml; without it there is no endpoint).
A call unsigned, wrongly signed, or replayed (a body already accepted within REPLAY
seconds: a forge's every push says something new, its before and after heads) gets 401
and a warning in the log. The bodies accepted are remembered by their digest in
STATE_DIR/hooks.seen, so a restart does not open the door to a replay.

A valid call makes every host of the policy due now; the loop starts the run on its
next turn (within a second), or right after the one under way. The repository named in
the body (repository.name, as forges send it) is logged and answered back; the run
syncs the policy's every repository (those whose heads did not change cost a look).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "/hooks/sync/"
MAX_BODY = 5 * 1024 * 1024  # bytes: forges cap push payloads lower than this
REPLAY = 7 * 86400  # seconds an accepted body is remembered
_POLICY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Answer:
    status: str
    text: str


class Hooks:
    """Checks calls in the HTTP server's threads; hands the policies to run to the loop
    through a queue (the loop alone touches the scheduler)."""

    def __init__(self, secret: bytes, seen_file: Path, wake: Callable[[], None]) -> None:
        self.secret = secret
        self.seen_file = seen_file
        self.wake = wake
        self.due: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.known: frozenset[str] = frozenset()  # the sync policies in force (set by the loop)
        self.seen = _load(seen_file)

    def handle(self, path: str, environ: dict[str, Any], client: str) -> Answer:
        policy = path.removeprefix(PREFIX)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._refuse(policy, client, "411 Length Required" if length <= 0 else
                                "413 Content Too Large", "expected a body of at most "
                                f"{MAX_BODY} bytes with its Content-Length")
        body = environ["wsgi.input"].read(length)
        given = environ.get("HTTP_X_HUB_SIGNATURE_256", "")
        wanted = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not given:
            return self._refuse(policy, client, "401 Unauthorized", "no X-Hub-Signature-256 "
                                "header: the call is not signed")
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            return self._refuse(policy, client, "401 Unauthorized", "wrong signature: signed "
                                "with another secret, or the body was changed")
        digest = hashlib.sha256(body).hexdigest()
        if digest in self.seen:
            return self._refuse(policy, client, "401 Unauthorized", "replayed: this body was "
                                "accepted before")
        if not _POLICY.match(policy) or policy not in self.known:
            return self._refuse(policy, client, "404 Not Found", "no sync policy of that name "
                                "with a schedule in the policy set in force")
        self._remember(digest)
        event = environ.get("HTTP_X_GITHUB_EVENT") or environ.get("HTTP_X_GITEA_EVENT") or ""
        if event == "ping":
            return Answer("200 OK", "pong\n")
        repository = _repository(body)
        self.due.put(policy)
        self.wake()
        log.info("webhook: sync %s now (%s pushed)", policy, repository or "a repository",
                 extra={"event": "webhook_accepted", "policy": policy,
                        "repository": repository, "client": client})
        return Answer("202 Accepted", f"sync {policy} starts now"
                      + (f" ({repository} pushed)" if repository else "") + "\n")

    def _refuse(self, policy: str, client: str, status: str, why: str) -> Answer:
        log.warning("webhook for %r from %s refused: %s", policy[:80], client, why,
                    extra={"event": "webhook_refused", "client": client, "reason": why})
        return Answer(status, why + "\n")

    def _remember(self, digest: str) -> None:
        now = time.time()
        self.seen = {d: at for d, at in self.seen.items() if at > now - REPLAY}
        self.seen[digest] = now
        try:
            tmp = self.seen_file.with_suffix(".new")
            tmp.write_text("".join(f"{d} {at:.0f}\n" for d, at in self.seen.items()))
            tmp.chmod(0o600)
            tmp.replace(self.seen_file)
        except OSError as e:  # remembered in memory still; a full disk must not stop hooks
            log.error("webhook: cannot keep %s: %s", self.seen_file, e,
                      extra={"event": "webhook_seen_failed"})


def _load(path: Path) -> dict[str, float]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    seen = {}
    for line in lines:
        digest, _, at = line.partition(" ")
        try:
            seen[digest] = float(at)
        except ValueError:
            continue
    return seen


def _repository(body: bytes) -> str:
    """The repository a forge's push body names (repository.full_name or .name)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    repo = data.get("repository") if isinstance(data, dict) else None
    if isinstance(repo, dict):
        repo = repo.get("full_name") or repo.get("name")
    return repo[:200] if isinstance(repo, str) else ""
