"""A policy's rollout: its hosts in waves, a health check after each, a failure budget.

    rollout:
      batch: [1, "30%", "100%"]    # hosts per wave; the last size repeats until all are done
      max_fail_percentage: 10      # stop once more than this share of ALL its hosts failed
      pause: 30s                   # between waves
      health:                      # after each wave, on each host of that wave
        command: "curl -fsS http://localhost:8080/healthz"
        http: {url: "http://{{ host }}:8080/healthz", status: 200}
        retries: 3
        delay: 5s

What Ansible users know as `serial` with `max_fail_percentage`, with one difference:
failures are counted over the whole rollout, not per wave, so a budget of 10% over 100
hosts stops at the 11th failed host however the waves are cut.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from agent.core.durations import Duration

_PERCENT = re.compile(r"^(\d{1,3})%$")


def _size(size: int | str) -> int | str:
    if isinstance(size, bool) or (isinstance(size, int) and size < 1):
        raise ValueError(f"expected a count of at least 1 or a percentage, got {size!r}")
    if isinstance(size, str):
        match = _PERCENT.match(size)
        if not match or not 1 <= int(match.group(1)) <= 100:
            raise ValueError(f"expected a percentage from 1% to 100%, got {size!r}")
    return size


Size = Annotated[int | str, AfterValidator(_size)]  # hosts in a wave: 2, or "30%"


def _web(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


WebUrl = Annotated[str, AfterValidator(_web)]  # an http:// or https:// URL


class Http(BaseModel):
    """An HTTP probe sent from the controller; Jinja2 in url sees the host's variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: WebUrl = Field(description="http:// or https:// URL, e.g. http://{{ host }}:8080/healthz.",
                     examples=["http://{{ host }}:8080/healthz"])
    status: int = Field(200, ge=100, le=599, description="The status code that means healthy.",
                        examples=[200])
    timeout: Duration = Field(5, description="Seconds to wait for the answer.", examples=["5s"])

class Health(BaseModel):
    """Whether a host that was just converged is healthy: a command on it, an HTTP probe,
    or both (each must pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = Field(None, description="A shell command run on the host; exit 0 "
                                "is healthy.", examples=["systemctl is-active nginx"])
    http: Http | None = Field(None, description="An HTTP probe from the controller.",
                              examples=[{"url": "http://{{ host.name }}:8080/healthz"}])
    retries: int = Field(0, ge=0, le=100, description="Tries after the first before the host "
                         "counts as failed.", examples=[3])
    delay: Duration = Field(2, description="Wait between tries.", examples=["5s"])
    reconnect: Duration = Field(0, description="How long to keep trying, delay apart, while "
                                "the host cannot be reached or drops the connection (it "
                                "reboots), as Ansible's wait_for_connection; 0: such a host "
                                "fails at once.", examples=["10m"])

    def is_empty(self) -> bool:
        return self.command is None and self.http is None


class Rollout(BaseModel):
    """Hosts in waves: each wave converged, then checked, before the next one starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: tuple[Size, ...] = Field(
        (1,), description="Hosts per wave, as counts or percentages of the "
        "policy's hosts; the last one repeats until every host is done.",
        examples=[[1, "30%", "100%"]])
    max_fail_percentage: float = Field(
        0, ge=0, le=100, description="Stop the waves left once more than this percentage of "
        "all the policy's hosts failed (counted over the whole rollout); 0: the first failure "
        "stops it.", examples=[10])
    pause: Duration = Field(0, description="Wait between waves.", examples=["30s"])
    health: Health | None = Field(None, examples=[{"command": "systemctl is-active nginx"}],
                                  description="Checked on each host of a wave after it "
                                  "is converged; a host that fails it counts as failed.")

    @field_validator("batch")
    @classmethod
    def _some(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        if not value:
            raise ValueError("expected at least one wave size, e.g. [1, \"30%\", \"100%\"]")
        return value

    def waves(self, hosts: list[str]) -> list[list[str]]:
        """The hosts cut into waves, in order (a percentage rounds up, at least one host)."""
        out, index, sizes = [], 0, list(self.batch)
        while index < len(hosts):
            size = sizes.pop(0) if len(sizes) > 1 else sizes[0]
            count = size if isinstance(size, int) else math.ceil(
                len(hosts) * int(str(size)[:-1]) / 100)
            out.append(hosts[index:index + max(1, count)])
            index += max(1, count)
        return out

    def over_budget(self, failed: int, total: int) -> bool:
        return total > 0 and failed * 100 > self.max_fail_percentage * total
