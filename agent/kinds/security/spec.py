"""The `security` policy's spec: controls (from shipped profiles and the policy's own),
what each checks and may fix, and the waivers that excuse a host from one for a while."""

from __future__ import annotations

import datetime
import fnmatch
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent.core.durations import Duration
from agent.kinds.security.checks import Check
from agent.kinds.security.profiles import NAMES, profile
from agent.kinds.tasks import Task
from agent.policy.messages import invalid, suggest

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SSHD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_SYSCTL_KEY = re.compile(r"^[a-z0-9_][a-z0-9_.\-/]*$")
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES = ("low", "medium", "high", "critical")


def _id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"expected lower-case letters, digits, ., _ and - (it names metrics "
                         f"and reports), got {value!r}")
    return value


ControlId = Annotated[str, AfterValidator(_id)]


def _settings(value: dict[str, str] | None, kind: str, names: re.Pattern[str], noun: str,
              empty: bool) -> dict[str, str] | None:
    """A fix's settings: each name one of its kind's, each value on one line (and, unless
    empty, not blank)."""
    for key, setting in (value or {}).items():
        if not names.match(key):
            raise invalid((key,), kind, f"{key!r} is not {noun}", key)
        if (not empty and not setting.strip()) or "\n" in setting:
            raise invalid((key,), kind, "expected a value on one line", setting)
    return value


class Fix(BaseModel):
    """How enforce mode fixes what the check found: built-in for sshd and sysctl, or tasks."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sshd: dict[str, str] | None = Field(
        None, examples=[{"PermitRootLogin": "no"}], description="Settings written to the drop-in "
        "/etc/ssh/sshd_config.d/00-opsagent-POLICY.conf (read before the rest, so it wins), checked "
        "with `sshd -t`, applied by a reload, and kept only when a new SSH login then works; "
        "otherwise the previous file is put back at once.")
    sysctl: dict[str, str] | None = Field(
        None, examples=[{"kernel.randomize_va_space": "2"}], description="Kernel parameters set "
        "now and kept in /etc/sysctl.d/99-zz-opsagent-POLICY.conf (read after the other files, "
        "so it wins at the next boot).")
    tasks: list[Task] | None = Field(
        None, examples=[[{"apt.packages": {"packages": ["telnetd"], "present": False}}]],
        description="pyinfra operations, in the tasks kind's syntax "
        "(`opsagent explain tasks`).")

    @field_validator("sshd")
    @classmethod
    def _sshd(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _settings(value, "sshd", _SSHD_KEY, "an sshd_config keyword", empty=False)

    @field_validator("sysctl")
    @classmethod
    def _sysctl(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _settings(value, "sysctl", _SYSCTL_KEY, "a kernel parameter name", empty=True)

    @model_validator(mode="after")
    def _some(self) -> Fix:
        if self.sshd is None and self.sysctl is None and self.tasks is None:
            raise ValueError("a fix has sshd, sysctl or tasks")
        return self


class Control(BaseModel):
    """One rule: what is checked on each host, how bad a failure is, and how it is fixed."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: ControlId = Field(examples=["ssh-no-root-login"], description="Names it in results, "
                          "waivers, metrics and reports. A control with the id of a profile's "
                          "replaces the fields it gives (e.g. only its severity).")
    title: str | None = Field(None, examples=["SSH root login is disabled"],
                              description="What it holds, in a sentence; default: the id.")
    description: str = Field("", examples=["Logins as root leave no trace of who it was."],
                             description="Why it matters, for the report.")
    severity: Severity | None = Field(None, examples=["high"], description="low, medium "
                                      "(the default), high or critical.")
    refs: dict[str, str] = Field(default_factory=dict, examples=[{"cis-debian-12": "5.2.7"}],
                                 description="Where it comes from: benchmark and section.")
    check: Check | None = Field(None, examples=[{"sshd": {"PermitRootLogin": "no"}}],
                                description="What is read on the host and expected "
                                "(`opsagent explain security` lists the kinds of check).")
    fix: Fix | None = Field(None, examples=[{"sshd": {"PermitRootLogin": "no"}}],
                            description="enforce mode: how it is fixed. Without one a failure "
                            "is only reported.")


class Waiver(BaseModel):
    """An accepted failure of one control on some hosts, with a reason, an owner and an end."""

    model_config = ConfigDict(extra="forbid")

    control: ControlId = Field(examples=["tmp-noexec"], description="The control's id.")
    hosts: list[str] = Field(default_factory=lambda: ["*"], examples=[["build1", "ci-*"]],
                             description="Host names, groups or shell patterns; default: all.")
    reason: str = Field(min_length=1, examples=["compilers run from /tmp"],
                        description="Why the failure is accepted.")
    owner: str = Field(min_length=1, examples=["ops@example.org"],
                       description="Who answers for it.")
    expires: datetime.date = Field(examples=["2027-03-01"], description="The day (UTC) it no "
                                   "longer holds; from then the control fails again and says "
                                   "since when.")

    @field_validator("expires", mode="before")
    @classmethod
    def _day(cls, value: object) -> object:
        if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}$", value.strip()):
            raise ValueError(f"expected a day such as 2027-03-01 (UTC), got {value!r}")
        return value

    def covers(self, host: str, groups: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(host, pattern) or pattern in groups
                   for pattern in self.hosts)


class Profile(BaseModel):
    """A shipped profile's file."""

    model_config = ConfigDict(extra="forbid")

    title: str
    description: str
    controls: list[Control] = Field(min_length=1)

    @field_validator("controls")
    @classmethod
    def _unique(cls, value: list[Control]) -> list[Control]:
        for i, control in enumerate(value):
            if control.check is None or control.severity is None or not control.refs:
                raise invalid((i,), "control", f"{control.id}: a profile's control has a "
                              "check, a severity and refs", control.id)
            if any(c.id == control.id for c in value[:i]):
                raise invalid((i, "id"), "control", f"{control.id!r} twice", control.id)
        return value


class SecuritySpec(BaseModel):
    """Controls checked on every target host; audit mode reports, enforce mode also fixes."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[str] = Field(default_factory=list, examples=[["debian-baseline"]],
                                description="Shipped sets of controls to start from "
                                f"({', '.join(NAMES)}); `opsagent explain security "
                                "debian-baseline` lists one's controls.")
    controls: list[Control] = Field(default_factory=list, examples=[[{
        "id": "no-telnet", "severity": "high",
        "check": {"package": {"name": "telnetd", "present": False}}}]],
        description="The policy's own controls, and changes to the profiles' (same id).")
    skip: list[ControlId] = Field(default_factory=list, examples=[["tmp-noexec"]],
                                  description="Controls of the profiles not checked at all "
                                  "(they do not apply here); use a waiver for a failure that "
                                  "is accepted for a while.")
    waivers: list[Waiver] = Field(default_factory=list, examples=[[{
        "control": "tmp-noexec", "hosts": ["build1"], "reason": "compilers run from /tmp",
        "owner": "ops@example.org", "expires": "2027-03-01"}]],
        description="Accepted failures: a waived failure is counted as waived, never as a pass.")
    waiver_limit: Duration = Field(365 * 86400, examples=["90d"], description="A waiver may "
                                   "not end further out than this from today.")
    evidence: bool = Field(True, examples=[False], description="Seal, per host and control, "
                           "what was read, expected and found into the audit log with each run "
                           "(its sha256) and keep it in the run's evidence file "
                           "(STATE_DIR/evidence/run-N.json).")

    _controls: tuple[Control, ...] = PrivateAttr(())
    _mode: str = PrivateAttr("enforce")
    _policy: str = PrivateAttr("security")

    @property
    def effective(self) -> tuple[Control, ...]:
        """The controls checked: the profiles' in order, changed and added to by the policy's,
        less the skipped ones; each with its title and severity filled in."""
        return self._controls

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def policy(self) -> str:
        """The policy's name: its fixes' files are its own (two policies never share one)."""
        return self._policy

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name not in NAMES:
                raise invalid((i,), "profile", f"no profile named {name!r}"
                              f"{suggest(name, list(NAMES))}", name)
        return value

    @model_validator(mode="after")
    def _merged(self, info: ValidationInfo) -> SecuritySpec:
        self._mode = str((info.context or {}).get("mode", "enforce"))
        self._policy = str((info.context or {}).get("policy", "security"))
        problems: list[InitErrorDetails] = []

        def problem(loc: tuple[str | int, ...], message: str, value: object) -> None:
            problems.append({"type": PydanticCustomError("security", message), "loc": loc,
                             "input": value})

        merged: dict[str, Control] = {}
        for name in self.profiles:
            merged.update((c.id, c) for c in profile(name))
        seen: set[str] = set()
        for i, control in enumerate(self.controls):
            if control.id in seen:
                problem(("controls", i, "id"), f"control {control.id!r} is given twice", control.id)
                continue
            seen.add(control.id)
            base = merged.get(control.id)
            if base is None and control.check is None:
                problem(("controls", i, "check"), f"control {control.id!r} needs a check (it is "
                        "in none of the profiles)", None)
                continue
            changes = control.model_dump(exclude_unset=True, exclude={"id"})
            merged[control.id] = base.model_copy(update={
                k: getattr(control, k) for k in changes}) if base else control
        for i, name in enumerate(self.skip):
            if name not in merged:
                problem(("skip", i), f"no control {name!r}{suggest(name, list(merged))}", name)
        limit = today() + datetime.timedelta(seconds=self.waiver_limit)
        for i, waiver in enumerate(self.waivers):
            if waiver.control not in merged:
                problem(("waivers", i, "control"), f"no control {waiver.control!r}"
                        f"{suggest(waiver.control, list(merged))}", waiver.control)
            if waiver.expires > limit:
                problem(("waivers", i, "expires"), f"{waiver.expires} is further out than "
                        f"waiver_limit ({self.waiver_limit // 86400} days from today) allows: "
                        "waivers are for a while, not for good (skip a control that does not "
                        "apply)", str(waiver.expires))
        if problems:
            raise ValidationError.from_exception_data("security", problems)
        self._controls = tuple(
            c.model_copy(update={"title": c.title or c.id, "severity": c.severity or "medium"})
            for c in merged.values() if c.id not in self.skip)
        return self


def today() -> datetime.date:
    """The day on the controller's clock, in UTC: waivers are compared with it."""
    return datetime.datetime.now(datetime.UTC).date()

