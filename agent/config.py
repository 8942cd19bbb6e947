"""agent.yml: the daemon's own settings, validated like policies (file:line:col on errors).

Relative paths are taken from the folder agent.yml is in, so a config and its policies
can move together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.core.durations import Duration
from agent.core.secrets import SecretRef, never_inline
from agent.policy.messages import load_settings

DEFAULT_LISTEN = "127.0.0.1:9469"
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_PULL = re.compile(r"^[^#\s]+(#[A-Za-z0-9._/-]+)?$")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+( .*)?$")
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: Duration = Field(30 * 86400, description="Keep per-host and per-operation results "
                                                      "this long (e.g. 30d).")
    runs: Duration = Field(365 * 86400, description="Keep run summaries this long; the audit log "
                                                   "is never pruned.")


class Verify(BaseModel):
    """Run only commits signed by a trusted key, as ansible-pull --verify-commit does."""

    model_config = ConfigDict(extra="forbid")

    signed_by: list[str] = Field(min_length=1, description="Trusted keys: SSH public keys "
                                 "('ssh-ed25519 AAAA...'), or OpenPGP fingerprints (40 hex "
                                 "digits) of keys in the daemon's GnuPG keyring. A fetched "
                                 "commit not signed by one of them is refused.")

    @field_validator("signed_by")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not (_SSH_KEY.match(key) or _FINGERPRINT.match(key.replace(" ", ""))):
                raise ValueError(f"expected an SSH public key or a 40-hex-digit OpenPGP "
                                 f"fingerprint, got {key[:40]!r}")
        return value


class Pull(BaseModel):
    """Pull mode. A pulled commit runs as the daemon's user (root, usually) on this host:
    whoever can push to the branch owns the machine. Fetch over https:// or ssh://, and
    set verify.signed_by so only signed commits ever run."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Git URL of the policy repository, optionally #BRANCH. "
                     "Credentials in it (https://USER:TOKEN@host/...) are taken out: they "
                     "reach git through a credential helper, never its command line or a log.")
    interval: Duration = Field(60, ge=1, description="Fetch at least this often (each "
                                                    "fetch 0.9 to 1 interval after the last, so a "
                                                    "fleet does not fetch in step).")
    username: str | None = Field(None, description="User name for an HTTP(S) repository.")
    password: Annotated[SecretRef | None, never_inline("a password", "{env: NAME} or "
                                                       "{file: PATH}")] = Field(
        None, description="Password or token for an HTTP(S) repository: {env: NAME} or "
        "{file: PATH}.")
    verify: Verify | None = Field(None, description="Only commits signed by these keys run.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _PULL.match(value):
            raise ValueError(f"expected GIT_URL or GIT_URL#BRANCH, got {value!r}")
        return value


class Webhooks(BaseModel):
    """POST /hooks/sync/POLICY on the listen address: a forge's push webhook (GitHub,
    Gitea, Forgejo: X-Hub-Signature-256) starts a sync policy's run at once."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[SecretRef, never_inline("a webhook secret", "{env: NAME} or "
                                              "{file: PATH}")] = Field(
        description="The secret shared with the forge, which signs each call with it "
        "(HMAC-SHA256 of the body): {env: NAME} or {file: PATH}.")


class AgentConfig(BaseModel):
    """The daemon's settings. Every field has a default: an empty agent.yml is valid."""

    model_config = ConfigDict(extra="forbid")

    policies: list[Path] = Field([Path("policies")], min_length=1,
                                 description="Policy files or folders.")
    inventory: str = Field("@local", description="Inventory file, or @local.")
    templates: Path = Field(Path("templates"), description="Where template sources are found.")
    state_dir: Path | None = Field(None, description="Run history, audit log and locks "
                                   "(default: /var/lib/opsagent as root, else "
                                   "~/.local/state/opsagent; OPSAGENT_STATE_DIR and "
                                   "--state-dir override it).")
    listen: str = Field(DEFAULT_LISTEN, description="HOST:PORT for /metrics and /healthz; "
                                                    "empty: no HTTP server.")
    concurrency: int = Field(4, ge=1, le=256, description="Policy runs at the same time.")
    timeout: int = Field(10, ge=1, le=3600, description="Seconds a host has to connect and "
                                                        "answer before it is unreachable.")
    lock_wait: Duration = Field(300, description="How long a run waits for a host another run "
                                                 "is converging.")
    stop_timeout: Duration = Field(60, description="On SIGTERM, how long running operations "
                                                   "get to end before they are killed.")
    warm_runs: bool = Field(True, description="Fork each run from a warm parent that has "
                            "imported opsagent once (about 1 s of CPU less per run); false: "
                            "a new interpreter per run.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise.")
    retention: Retention = Field(default_factory=Retention)
    audit_syslog: str | None = Field(None, description="Also send each audit entry to this "
                                     "syslog socket (e.g. /dev/log) as it is kept, for "
                                     "journald or rsyslog to forward off the host.")
    pull: Pull | None = Field(None, description="Pull mode: fetch policies from git, "
                                                "converge @local.")
    webhooks: Webhooks | None = Field(None, description="Push webhooks that start sync "
                                      "policies at once; none without a secret.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value and not (_LISTEN.match(value) and 0 < int(value.rsplit(":", 1)[1]) < 65536):
            raise ValueError(f"expected HOST:PORT such as {DEFAULT_LISTEN}, got {value!r}")
        return value

    def address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, port = self.listen.rsplit(":", 1)
        return host.strip("[]"), int(port)


def load_config(path: Path) -> AgentConfig:
    """agent.yml validated, relative paths resolved against its folder; raises Problems."""
    config = load_settings(path, "agent config", AgentConfig)
    base = path.resolve().parent
    return config.model_copy(update={
        "policies": [base / p for p in config.policies],
        "templates": base / config.templates,
        "inventory": config.inventory if config.inventory == "@local" else str(base / config.inventory),
        "state_dir": base / config.state_dir if config.state_dir else None,
    })
