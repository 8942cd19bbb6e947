"""The envelope every policy document shares; `spec` is validated by its kind's own model."""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from agent.core.durations import Duration
from agent.core.rollout import Rollout

NAME = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,62})$")
_AT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique policy name: lowercase letters, digits, '-', '_', '.'.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                f"expected lowercase letters, digits, '-', '_' or '.', at most 63, got {value!r}"
            )
        return value


class Schedule(BaseModel):
    """When the daemon converges this policy: exactly one of every, at or cron."""

    model_config = ConfigDict(extra="forbid")

    every: Duration | None = Field(None, description="Interval, e.g. 30m, 1h, 1d.")
    at: str | None = Field(None, description="Daily at this local time, HH:MM.")
    cron: str | None = Field(None, description="Cron expression, five fields.")
    splay: Duration = Field(0, description="Spread start times by up to this much, fixed per "
                                           "policy and host.")
    timeout: Duration = Field(3600, description="A run still going after this is stopped and "
                                                "reported failed.")

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None and not _AT.match(value):
            raise ValueError(f"expected a time as HH:MM, got {value!r}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5:
            raise ValueError(f"expected five cron fields (min hour day month weekday), got {value!r}")
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime.datetime(2000, 1, 1))
        except CronSimError as e:
            raise ValueError(f"invalid cron expression {value!r}: {e}") from None
        return value

    @field_validator("every", "timeout")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("expected a duration of at least 1s")
        return value

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if sum(x is not None for x in (self.every, self.at, self.cron)) != 1:
            raise ValueError("expected exactly one of every, at or cron")
        return self


class Envelope(BaseModel):
    """The fields every policy document has, whatever its kind."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["opsagent/v1"] = Field(alias="apiVersion", description="Always opsagent/v1.")
    kind: str = Field(description="The policy kind; see `opsagent explain KIND`.")
    metadata: Metadata
    targets: list[str] = Field(min_length=1, description="Inventory groups or hosts.")
    mode: Literal["enforce", "audit"] = Field(
        "enforce", description="enforce converges; audit only reports drift."
    )
    schedule: Schedule | None = Field(None, description="Omitted: one-shot runs only.")
    tags: list[str] = Field(default_factory=list, description="For --tags and --skip-tags: "
                            "every step of the policy has these (a task may add its own).",
                            examples=[["web", "config"]])
    rollout: Rollout | None = Field(None, description="Converge the targets in waves, with a "
                                    "health check after each and a failure budget (Ansible's "
                                    "serial); omitted: every host at once.")
    spec: dict[str, Any] = Field(description="Kind-specific; validated by the kind's model.")

    @field_validator("rollout")
    @classmethod
    def _own_waves(cls, value: Rollout | None, info: ValidationInfo) -> Rollout | None:
        if value is not None and info.data.get("kind") == "deploy":
            raise ValueError("a deploy's waves are its spec.strategy (rolling, canary or blue_green), "
                             "not rollout")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str, info: ValidationInfo) -> str:
        """The known kinds come in the validation context (policy.validate passes the
        registry's names), so the envelope does not import the kinds."""
        kinds = (info.context or {}).get("kinds", ())
        if value not in kinds:
            valid = ", ".join(repr(k) for k in sorted(kinds))
            raise ValueError(f"unknown kind {value!r}; expected one of {valid}")
        return value
