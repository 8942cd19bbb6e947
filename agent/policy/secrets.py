"""Secret references: `{file: PATH}` or `{env: NAME}`, resolved only when needed, never shown."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

MASK = "********"


class SecretRef(BaseModel):
    """Where a secret is read from; the value itself is never written in a policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError("a secret is {file: PATH} or {env: NAME}, exactly one of them")
        return self

    def resolve(self) -> Secret:
        if self.file is not None:
            try:
                text = Path(self.file).read_text(encoding="utf-8")
            except OSError as e:
                raise SecretError(f"cannot read secret file {self.file}: {e.strerror}") from None
            return Secret(text.rstrip("\n"))
        assert self.env is not None
        if self.env not in os.environ:
            raise SecretError(f"environment variable {self.env} is not set")
        return Secret(os.environ[self.env])

    def __str__(self) -> str:
        return f"file:{self.file}" if self.file is not None else f"env:{self.env}"


class SecretError(Exception):
    pass


class Secret:
    """A resolved secret: its value is only reachable through reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__


def mask(text: str, secrets: list[Secret]) -> str:
    """Text with every secret's value replaced by the mask."""
    for secret in secrets:
        if secret.reveal():
            text = text.replace(secret.reveal(), MASK)
    return text
