"""/healthz follows the scheduler loop's heartbeat; /metrics serves the exposition."""

from __future__ import annotations

from typing import Any

from agent.daemon.http import Heartbeat, app


def call(path: str, heartbeat: Heartbeat) -> tuple[str, bytes]:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> Any:
        seen.append(status)

    body = b"".join(app(lambda: b"opsagent_up 1.0\n", heartbeat)({"PATH_INFO": path},
                                                                 start_response))
    return seen[0], body


def test_healthz_is_healthy_only_while_the_loop_beats() -> None:
    beating = Heartbeat(stale=10)
    assert call("/healthz", beating) == ("200 OK", b"ok\n")
    stuck = Heartbeat(stale=0.0)  # no beat within the allowed time
    assert call("/healthz", stuck) == ("503 Service Unavailable", b"scheduler loop is not running\n")
    assert call("/metrics", stuck) == ("200 OK", b"opsagent_up 1.0\n")
    assert call("/", beating)[0] == "404 Not Found"
