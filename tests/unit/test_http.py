"""/healthz follows the scheduler loop's heartbeat; /metrics serves the exposition."""

from __future__ import annotations

from typing import Any

from agent.daemon.http import Heartbeat, app


def call(path: str, heartbeat: Heartbeat, method: str = "GET") -> tuple[str, bytes]:
    status, body, _ = call_with_headers(path, heartbeat, method)
    return status, body


def call_with_headers(path: str, heartbeat: Heartbeat, method: str = "GET"
                      ) -> tuple[str, bytes, dict[str, str]]:
    seen: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> Any:
        seen.append((status, dict(headers)))

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    body = b"".join(app(lambda: b"opsagent_up 1.0\n", heartbeat)(environ, start_response))
    return seen[0][0], body, seen[0][1]


def test_healthz_is_healthy_only_while_the_loop_beats() -> None:
    beating = Heartbeat(stale=10)
    assert call("/healthz", beating) == ("200 OK", b"ok\n")
    stuck = Heartbeat(stale=0.0)  # no beat within the allowed time
    assert call("/healthz", stuck) == ("503 Service Unavailable", b"scheduler loop is not running\n")
    assert call("/metrics", stuck) == ("200 OK", b"opsagent_up 1.0\n")
    assert call("/", beating)[0] == "404 Not Found"


def test_only_get_and_head_are_answered() -> None:
    beating = Heartbeat(stale=10)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, body, headers = call_with_headers("/metrics", beating, method)
        assert (status, body, headers["Allow"]) == ("405 Method Not Allowed", b"only GET and HEAD\n",
                                                    "GET, HEAD")
    status, body, headers = call_with_headers("/metrics", beating, "HEAD")
    assert (status, body, headers["Content-Length"]) == ("200 OK", b"", "16")


def test_healthz_says_what_is_wrong() -> None:
    beating = Heartbeat(stale=10)
    beating.fault = "state store: database is locked"
    assert call("/healthz", beating) == ("503 Service Unavailable",
                                         b"state store: database is locked\n")
