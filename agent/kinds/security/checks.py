"""What a control checks: one or more of these read on the host, each with what is
expected. All of a host's checks are read in one round trip (host_read.py, host_check.py).

Expected values of settings (sshd, sysctl) are written as an InSpec user reads them:
`no` or `2` (equal; sshd's case does not matter), `<= 4`, `>= 1`, `< 10`, `> 0`
(numbers), `~ REGEX` / `!~ REGEX` (matches, does not match), or a list (one of them).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from agent.core.durations import Duration

_COMPARE = re.compile(r"^(<=|>=|<|>)\s*(-?\d+(\.\d+)?)$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")


def _expected(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            raise ValueError("expected at least one allowed value")
        return [_expected(v) for v in value]
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a value, a comparison such as '<= 4', '~ REGEX' or a list, "
                         f"got {value!r}")
    text = value.strip()
    if text.startswith(("<", ">")) and not _COMPARE.match(text):
        raise ValueError(f"expected a comparison with a number such as '<= 4', got {value!r}")
    if text.startswith(("~", "!~")):
        try:
            re.compile(text.lstrip("!~ "))
        except re.error as e:
            raise ValueError(f"invalid regular expression in {value!r}: {e}") from None
    return text


Expected = Annotated[Any, BeforeValidator(_expected)]


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"invalid regular expression {value!r}: {e}") from None
    return value


Regex = Annotated[str | None, AfterValidator(_regex)]


def _mode(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not _MODE.match(text):
        raise ValueError(f"expected an octal mode such as '0644', got {value!r}")
    return text.zfill(4)


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected an absolute path, got {value!r}")
    return value


Path = Annotated[str, AfterValidator(_path)]
Mode = Annotated[str | None, BeforeValidator(_mode)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class FileCheck(_Model):
    """A file or directory (InSpec's `file`)."""

    path: Path = Field(examples=["/etc/shadow"], description="Its absolute path on the host.")
    exists: bool = Field(True, examples=[False], description="false: the check passes only "
                         "when nothing is there.")
    required: bool = Field(True, examples=[False], description="false: a file that is not "
                           "there makes the check not applicable (a backup copy such as "
                           "/etc/shadow-), not failed.")
    mode: Mode = Field(None, examples=["0640"], description="At most these permission bits: "
                       "any bit beyond them fails (0640 passes 0600 and fails 0644).")
    owner: str | None = Field(None, examples=["root"], description="Its owner's name.")
    group: str | None = Field(None, examples=["shadow"], description="Its group's name.")
    matches: Regex = Field(None, examples=["^umask 027"], description="A regular expression "
                           "(multi-line: ^ and $ at each line) its content must match.")
    not_matches: Regex = Field(None, examples=["^\\+:"], description="One its content must "
                               "not match.")
    sha256: str | None = Field(
        None, examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        description="Its content's sha256 must be this (a file integrity baseline).",
        pattern=r"^[0-9a-f]{64}$")


class ModuleCheck(_Model):
    """A kernel module (/proc/modules, and modprobe.d for disabled ones)."""

    name: str = Field(examples=["cramfs"], description="The module's name.")
    loaded: bool | None = Field(None, examples=[False], description="Whether it is loaded now.")
    disabled: bool | None = Field(None, examples=[True], description="true: modprobe.d stops "
                                  "it loading: `install NAME /bin/false` (or /bin/true); a "
                                  "`blacklist NAME` line alone does not stop `modprobe NAME`.")


class PackageCheck(_Model):
    """A Debian package (dpkg's status)."""

    name: str = Field(examples=["telnetd"], description="The package's name.")
    present: bool = Field(True, examples=[False], description="Installed or not.")
    version: str | None = Field(None, examples=[">= 1:9.2p1-2"], description="present: a "
                                "version comparison (<, <=, =, >=, >) as dpkg compares them.")

    @model_validator(mode="after")
    def _version(self) -> PackageCheck:
        if self.version is not None and not re.match(r"^(<=|>=|<|>|=)\s*\S+$", self.version):
            raise ValueError(f"expected a comparison such as '>= 1.2-3', got {self.version!r}")
        return self


class ServiceCheck(_Model):
    """A systemd unit (systemctl); a host not run by systemd has no unit active."""

    name: str = Field(examples=["rsync"], description="The unit (.service may be left out).")
    enabled: bool | None = Field(None, examples=[False], description="Starts at boot or not.")
    active: bool | None = Field(None, examples=[False], description="Running now or not.")


class AccountsCheck(_Model):
    """The host's users and groups (/etc/passwd, /etc/shadow, /etc/group)."""

    uid0: list[str] | None = Field(None, examples=[["root"]], description="Only these accounts "
                                   "have UID 0.")
    empty_passwords: bool | None = Field(None, examples=[False], description="false: no "
                                         "account has an empty password field in /etc/shadow.")
    system_logins: bool | None = Field(None, examples=[False], description="false: accounts "
                                       "under UID 1000, root, sync, shutdown and halt apart, "
                                       "have a shell that refuses logins (nologin, false).")
    duplicates: bool | None = Field(None, examples=[False], description="false: no user "
                                    "name, UID, group name or GID is used twice.")
    group_members: dict[str, list[str]] | None = Field(
        None, examples=[{"shadow": []}], description="Per group, the only members it may have "
        "(listed in /etc/group, or as a user's primary group).")


class MountCheck(_Model):
    """A mount point (/proc/mounts)."""

    path: Path = Field(examples=["/tmp"], description="The mount point.")
    mounted: bool = Field(True, examples=[True], description="It is a file system of its own.")
    options: list[str] = Field(default_factory=list, examples=[["nodev", "nosuid", "noexec"]],
                               description="Options it must be mounted with.")


class PortsCheck(_Model):
    """Listening sockets (/proc/net/tcp, tcp6, udp, udp6; of the host's network namespace)."""

    protocol: Literal["tcp", "udp"] = Field("tcp", examples=["udp"], description="Which.")
    closed: list[int] = Field(default_factory=list, examples=[[21, 23, 111]],
                              description="Ports nothing may listen on.")
    only: list[int] | None = Field(None, examples=[[22]], description="The only ports "
                                   "anything may listen on (loopback addresses apart).")


class CommandCheck(_Model):
    """A command run on the host (`sh -c`), as root; its exit code and output."""

    run: str = Field(examples=["grep -q '^root:[*!]' /etc/shadow"], description="The command.")
    exit: int = Field(0, examples=[0], description="The exit code it must end with.")
    matches: Regex = Field(None, examples=["^ok"], description="A regular expression its "
                           "output must match.")
    not_matches: Regex = Field(None, examples=["world-writable"], description="One its "
                               "output must not match.")
    timeout: Duration = Field(30, examples=["10s"], description="It fails (error) when it runs "
                              "longer.")


KINDS = ("file", "sshd", "sysctl", "sysctl_conf", "kernel_module", "package", "service",
         "accounts", "mount", "ports", "command")


class Check(_Model):
    """What the control reads and expects: one or more of these; all of them must hold."""

    file: FileCheck | None = Field(None, examples=[{"path": "/etc/shadow", "mode": "0640"}],
                                   description="A file's existence, mode, owner, group, content.")
    sshd: dict[str, Expected] | None = Field(
        None, examples=[{"PermitRootLogin": "no", "MaxAuthTries": "<= 4"}], description="sshd's "
        "effective settings as `sshd -T` prints them (the drop-ins applied); not applicable "
        "where sshd is not installed.")
    sysctl: dict[str, Expected] | None = Field(
        None, examples=[{"kernel.randomize_va_space": 2}], description="Kernel parameters as "
        "/proc/sys holds them now; one this kernel lacks is not applicable.")
    sysctl_conf: dict[str, Expected] | None = Field(
        None, examples=[{"kernel.randomize_va_space": 2}], description="Kernel parameters as the "
        "next boot sets them: the last value /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/"
        "sysctl.d, /usr/lib/sysctl.d and /etc/sysctl.conf give (as `sysctl --system` reads "
        "them); one no file sets fails.")
    kernel_module: ModuleCheck | None = Field(None, examples=[{"name": "cramfs", "disabled": True}],
                                              description="A kernel module.")
    package: PackageCheck | None = Field(None, examples=[{"name": "telnetd", "present": False}],
                                         description="A Debian package.")
    service: ServiceCheck | None = Field(None, examples=[{"name": "rsync", "active": False}],
                                         description="A systemd unit.")
    accounts: AccountsCheck | None = Field(None, examples=[{"uid0": ["root"]}],
                                           description="Users and groups.")
    mount: MountCheck | None = Field(None, examples=[{"path": "/tmp", "options": ["nodev"]}],
                                     description="A mount point and its options.")
    ports: PortsCheck | None = Field(None, examples=[{"closed": [23]}],
                                     description="Listening ports.")
    command: CommandCheck | None = Field(None, examples=[{"run": "test ! -e /etc/hosts.equiv"}],
                                         description="Any command, by exit code and output.")

    @model_validator(mode="after")
    def _some(self) -> Check:
        if not any(getattr(self, name) is not None for name in KINDS):
            raise ValueError(f"a check reads at least one of: {', '.join(KINDS)}")
        return self

    def reads(self) -> dict[str, Any]:
        """The check as the host program takes it."""
        return self.model_dump(exclude_none=True)
