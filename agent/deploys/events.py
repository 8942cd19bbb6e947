"""Deploy events to the policy's webhooks: JSON POSTed with X-Opsagent-Event and
X-Opsagent-Signature: sha256=HEX (HMAC-SHA256 of the body with the webhook's secret, as
GitHub signs its own), from a background thread that retries each with doubling waits.
Nothing here ever holds the deploy up: send() only queues, and close() waits a bounded
time for what is still queued, then gives up on it (saying so)."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from agent.core.secrets import SecretError
from agent.kinds.deploy.spec import Webhook

FLUSH = 10.0  # seconds close() waits for queued events


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Events:
    def __init__(self, hooks: list[Webhook], base: dict[str, Any], say: Callable[[str], None]
                 ) -> None:
        self.hooks, self.base, self.say = hooks, base, say
        self.pending: queue.Queue[tuple[Webhook, str, bytes] | None] = queue.Queue()
        self.delivered = 0
        self.thread = threading.Thread(target=self._work, daemon=True) if hooks else None
        if self.thread is not None:
            self.thread.start()

    def send(self, event: str, **data: Any) -> None:
        body = json.dumps({"event": event, "at": time.time(), **self.base, **data},
                          sort_keys=True).encode()
        for hook in self.hooks:
            if event in hook.events:
                self.pending.put((hook, event, body))

    def close(self) -> None:
        if self.thread is None:
            return
        self.pending.put(None)
        self.thread.join(FLUSH)
        if self.thread.is_alive():
            self.say(f"webhooks: gave up on {self.pending.qsize()} undelivered event(s)")

    def _work(self) -> None:
        while True:
            item = self.pending.get()
            if item is None:
                return
            self._deliver(*item)

    def _deliver(self, hook: Webhook, event: str, body: bytes) -> None:
        try:
            secret = hook.secret.resolve().reveal()
        except SecretError as e:
            self.say(f"webhook {hook.url}: {e}; {event} not sent")
            return
        wait = 1.0
        for attempt in range(hook.retries + 1):
            request = urllib.request.Request(hook.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Opsagent-Event": event,
                "X-Opsagent-Signature": signature(secret, body)})
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                    if answer.status < 300:
                        self.delivered += 1
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if attempt < hook.retries:
                time.sleep(wait)
                wait = min(wait * 2, 30.0)
        self.say(f"webhook {hook.url}: {event} not delivered after {hook.retries + 1} tries")
