"""Secret references: `{env: NAME}` or `{file: PATH}`, resolved when needed, never shown.

    password: {env: DB_PASS}            # opsagent's own environment
    api_key: {file: /etc/opsagent/key}  # a file on the controller (trailing newline dropped)

A mapping with the single key `env` or `file` is a reference wherever a task argument
(at any depth) or an inventory variable may be written; the backup kind's passphrase
takes one too. It is resolved on the controller when a run plans its hosts, so a missing
one is an error at its file:line:col and nothing runs; the value is never stored (policy
copies keep the reference). Every value resolved is masked as ******** in what opsagent
prints (terminal, --json, logs) and keeps (the state store, the audit log, reports), as
Ansible's no_log and Puppet's Sensitive hide one. A task that uses a secret is also
`sensitive`: its diff and output are replaced by a note and a hash. Commands run on
@local do not inherit opsagent's environment, so an {env:} secret reaches only the task
that names it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

MASK = "********"
_KEYS = ("env", "file")
_known: set[str] = set()  # every value resolved in this process
_environ: dict[str, str] | None = None  # the environment {env:} reads while a run hides it
_LINE = 4  # lines of a multi-line secret this long or longer are masked one by one


class SecretRef(BaseModel):
    """Where a secret is read from; the value itself is never written in a policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = Field(None, description="A file holding the secret (its text, trailing "
                             "newlines dropped).", examples=["/etc/opsagent/db-pass"])
    env: str | None = Field(None, description="An environment variable of opsagent's own.",
                            examples=["DB_PASS"])

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError("a secret is {file: PATH} or {env: NAME}, exactly one of them")
        return self

    def resolve(self) -> Secret:
        if self.file is not None:
            path = Path(self.file).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                why = getattr(e, "strerror", None) or "not UTF-8 text"
                raise SecretError(f"cannot read secret file {self.file}: {why}") from None
            return Secret(text.rstrip("\n"))
        assert self.env is not None
        environ = os.environ if _environ is None else _environ
        if self.env not in environ:
            raise SecretError(f"environment variable {self.env} is not set")
        return Secret(environ[self.env])

    def __str__(self) -> str:
        return f"file:{self.file}" if self.file is not None else f"env:{self.env}"


class SecretError(Exception):
    pass


def never_inline(what: str, where: str) -> BeforeValidator:
    """For a field that takes a SecretRef: refuse a plain value without echoing it."""
    def check(value: Any) -> Any:
        if isinstance(value, str | int):
            raise PydanticCustomError("secret_inline", f"{what} is never written inline; use "
                                      f"{where}")
        return value

    return BeforeValidator(check)


class Secret:
    """A resolved secret: its value is only reachable through reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if value:
            _known.add(value)
            _known.update(line for line in value.splitlines() if len(line.strip()) >= _LINE)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__


def read_environment_from(environ: dict[str, str] | None) -> None:
    """Where {env: NAME} is read from while the process's own environment is cleared
    (engine.environment); None: os.environ again."""
    global _environ
    _environ = environ


def reference(value: Any) -> SecretRef | None:
    """The reference a value is, if it is one: a mapping of `env` or `file` to a string.

    Raises SecretError for both keys at once."""
    if not (isinstance(value, dict) and value and all(k in _KEYS for k in value)
            and all(isinstance(v, str) for v in value.values())):
        return None
    if len(value) != 1:
        raise SecretError("a secret is {file: PATH} or {env: NAME}, exactly one of them")
    return SecretRef.model_validate(value)


def resolve_all(value: Any, where: tuple[str | int, ...] = ()) -> tuple[Any, bool]:
    """value with every reference in it replaced by its text; and whether there was one.

    Raises SecretError naming the path of the reference that failed in its args[0].
    """
    try:
        ref = reference(value)
        if ref is not None:
            return ref.resolve().reveal(), True
    except SecretError as e:
        raise SecretError(str(e), where) from None
    if isinstance(value, dict):
        out, found = {}, False
        for key, item in value.items():
            out[key], used = resolve_all(item, (*where, key))
            found = found or used
        return out, found
    if isinstance(value, list):
        items = [resolve_all(item, (*where, i)) for i, item in enumerate(value)]
        return [item for item, _ in items], any(used for _, used in items)
    return value, False


def holds_secret(value: Any) -> bool:
    """Whether a known secret's value appears in value (text, or inside lists/mappings)."""
    if isinstance(value, str):
        return any(known in value for known in _known)
    if isinstance(value, dict):
        return any(holds_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(holds_secret(v) for v in value)
    text = getattr(value, "text", None)  # a rendered template's text
    return isinstance(text, str) and holds_secret(text)


def scrub(text: str) -> str:
    """text with the value of every secret resolved in this process masked."""
    if not text or not _known:
        return text
    for known in sorted(_known, key=len, reverse=True):  # longest first: a whole before its lines
        if known in text:
            text = text.replace(known, MASK)
    return text


def mask(text: str, secrets: list[Secret]) -> str:
    """Text with every given secret's value (and every other known one) masked."""
    for secret in secrets:
        if secret.reveal():
            text = text.replace(secret.reveal(), MASK)
    return scrub(text)
