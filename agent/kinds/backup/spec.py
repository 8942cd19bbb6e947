"""The `backup` policy's spec: what borg backs up, where to, how long it keeps it, how it checks."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.core.durations import Duration
from agent.core.secrets import SecretRef, never_inline

ENCRYPTIONS = ("none", "authenticated", "authenticated-blake2", "repokey", "repokey-blake2",
               "keyfile", "keyfile-blake2")
_COMPRESSION = re.compile(r"^(none|lz4|zstd(,\d{1,2})?|zlib(,\d)?|lzma(,\d)?|auto,.+)$")
_SSH = "ssh -o BatchMode=yes -o ServerAliveInterval=10 -o ServerAliveCountMax=3"


class Retention(BaseModel):
    """How many archives of this host borg prune keeps, per period (see `borg help prune`)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    keep_last: int | None = Field(None, examples=[3], ge=0, description="The newest N archives.")
    keep_hourly: int | None = Field(None, examples=[24], ge=0, description="The last archive of N hours.")
    keep_daily: int | None = Field(None, examples=[7], ge=0, description="The last archive of N days.")
    keep_weekly: int | None = Field(None, examples=[4], ge=0, description="The last archive of N ISO weeks.")
    keep_monthly: int | None = Field(None, examples=[6], ge=0, description="The last archive of N months.")
    keep_yearly: int | None = Field(None, examples=[1], ge=0, description="The last archive of N years.")

    @model_validator(mode="after")
    def _some(self) -> Retention:
        if not any(v for v in self.model_dump().values()):
            raise ValueError("expected at least one keep_* rule above 0 (borg prune keeps "
                             "nothing otherwise)")
        return self

    def rules(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v}


class Check(BaseModel):
    """A consistency check, run at most once per `frequency` for this repository."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: Literal["repository", "archives", "extract"] = Field(
        examples=["extract"],
        description="repository: segments and index (borg check --repository-only); archives:"
        " archive metadata (--archives-only); extract: restore drill, every chunk of the "
        "latest archive read, decrypted and verified (borg extract --dry-run).")
    frequency: Duration = Field(604800, examples=["30d"],
                                description="e.g. 1w, 30d; `always` or 0: every run.")

    @field_validator("frequency", mode="before")
    @classmethod
    def _always(cls, value: Any) -> Any:
        return 0 if value == "always" else value


class Hooks(BaseModel):
    """Shell commands run on the host around the backup, without borg's secrets."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    before: list[str] = Field(examples=[["systemctl stop app"]],
                              default_factory=list, description="Before the archive is made; "
                              "one failing stops the backup.")
    after: list[str] = Field(examples=[["systemctl start app"]],
                             default_factory=list, description="After a successful backup.")
    on_error: list[str] = Field(examples=[["logger backup failed"]],
                                default_factory=list, description="When any step failed.")


class Database(BaseModel):
    """A database dumped consistently before the archive is made, and kept in it."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    type: Literal["sqlite"] = Field(examples=["sqlite"],
                                    description="sqlite: an online backup through SQLite's "
                                                "backup API (python3's sqlite3 on the host).")
    path: str = Field(examples=["/var/lib/app/app.db"], description="The database file on the host.")
    name: str | None = Field(None, examples=["app.db"],
                             description="Dump file name; default: the file's name.")

    @property
    def dump_name(self) -> str:
        return self.name or self.path.rstrip("/").rsplit("/", 1)[-1]


class BackupSpec(BaseModel):
    """Back up paths of each target host with borg, prune by retention rules, check the
    repository at its own frequencies, and report it all as metrics. Like borgmatic, but
    pushed from one place and measured natively."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    repository: str = Field(examples=["ssh://borg@backup1/srv/borg/{{ host.name }}"],
                            description="ssh://USER@HOST/PATH or an absolute path on the host;"
                            " Jinja2 with host variables, e.g. /srv/borg/{{ host.name }}.")
    encryption: Literal[ENCRYPTIONS] = Field(  # type: ignore[valid-type]
        "repokey-blake2", examples=["repokey-blake2"], description="borg init --encryption, "
        "used only when the repository is made.")
    passphrase: Annotated[SecretRef | None, never_inline(
        "a passphrase", "{file: PATH} (on the host) or {env: NAME}")] = Field(
        None, examples=[{"env": "BORG_PASSPHRASE"}, {"file": "/root/.borg-passphrase"}],
        description="{file: PATH}: a file on the host, read by borg there; {env: NAME}: "
        "opsagent's own environment, sent to borg over stdin. Never inline.")
    sources: list[str] = Field(examples=[["/etc", "/home"]],
                               min_length=1, description="Absolute paths on the host.")
    exclude: list[str] = Field(examples=[["/home/*/.cache"]],
                               default_factory=list, description="borg exclude patterns.")
    compression: str = Field("lz4", examples=["zstd,6"], description="borg --compression, e.g. lz4, zstd,6.")
    retention: Retention | None = Field(None, examples=[{"keep_daily": 7, "keep_weekly": 4}],
                                        description="Omitted: nothing is pruned.")
    checks: list[Check] = Field(
        examples=[[{"name": "repository", "frequency": "1w"}, {"name": "extract", "frequency": "30d"}]],
        default_factory=lambda: [Check(name="repository"), Check(name="archives")],
        description="Default: repository and archives, weekly.")
    hooks: Hooks = Field(examples=[{"before": ["systemctl stop app"], "after": ["systemctl start app"]}],
                         default_factory=Hooks, description="Commands around the backup.")
    databases: list[Database] = Field(examples=[[{"type": "sqlite", "path": "/var/lib/app/app.db"}]],
                                      default_factory=list, description="Dumped first, then "
                                      "archived with the sources.")
    frequency: Duration | None = Field(
        None, examples=["1d"],
              description="Make an archive only when this host's newest is at least this old;"
        " default: half the schedule's interval (a repeated apply in between changes nothing),"
        " 0 without a schedule (every run).")
    archive_prefix: str | None = Field(None, examples=["web1-"],
                                       description="Archive names are PREFIX + time; "
                                       "default: the host's inventory name and '-'. Prune and"
                                       " checks only touch archives with this prefix.")
    lock_wait: Duration = Field(300, examples=["5m"],
                                description="Wait this long for borg's repository lock.")
    retries: int = Field(0, examples=[2], ge=0, le=10, description="Retry a failed borg command this often.")
    retry_wait: Duration = Field(10, examples=["30s"],
                                 description="Wait before the first retry; doubled after "
                                 "each.")
    ssh_command: str = Field(_SSH, examples=["ssh -i /root/.ssh/borg -o BatchMode=yes"],
                             description="BORG_RSH for ssh:// repositories.")
    _interval: float | None = PrivateAttr(None)  # the policy's schedule, for the metrics

    @property
    def interval(self) -> float | None:
        return self._interval

    @field_validator("sources")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"expected absolute paths, got {path!r}")
        return value

    @field_validator("compression")
    @classmethod
    def _compression(cls, value: str) -> str:
        if not _COMPRESSION.match(value):
            raise ValueError(f"expected a borg compression such as lz4, zstd,6 or none, "
                             f"got {value!r}")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not (value.startswith("/") or re.match(r"^ssh://[^/\s]+/\S+$", value)):
            raise ValueError(f"expected ssh://USER@HOST/PATH or an absolute path, got {value!r}")
        return value

    @model_validator(mode="after")
    def _secret_and_frequency(self, info: ValidationInfo) -> BackupSpec:
        if self.encryption != "none" and self.passphrase is None:
            raise ValueError(f"encryption {self.encryption} needs a passphrase: "
                             "{file: PATH} or {env: NAME}")
        if len({c.name for c in self.checks}) != len(self.checks):
            raise ValueError("each check name may appear once")
        interval = (info.context or {}).get("interval")
        self._interval = float(interval) if interval else None
        if self.frequency is None:
            self.frequency = int(interval) // 2 if interval else 0
        return self
