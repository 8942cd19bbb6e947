"""The `maintenance` policy's spec: what to keep tidy on the host and when it may act."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.core.durations import Duration
from agent.core.rollout import Health, Size
from agent.kinds.maintenance.window import Window


class Thresholds(BaseModel):
    """When a repository needs a task: git gc --auto's own limits by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loose_objects: int = Field(6700, ge=0, description="More loose objects than this: prune "
                               "the old unreachable ones and repack (git's gc.auto).",
                               examples=[6700])
    packs: int = Field(50, ge=1, description="More packs than this: a geometric repack "
                       "(git's gc.autoPackLimit).", examples=[50])
    loose_refs: int = Field(100, ge=0, description="More loose refs than this: pack-refs.",
                            examples=[100])


class Fsck(BaseModel):
    """git fsck at its own pace: a repository failing it gets no writing task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frequency: Duration = Field(604800, description="How often each repository is checked "
                                "in full (a failing one at every run until it passes).",
                                examples=["1w"])


class Git(BaseModel):
    """Housekeeping of the git repositories on the host, only what each one needs:
    prune (old unreachable loose objects), a geometric repack, pack-refs, the
    commit-graph; fsck at its own frequency. A repository being written (a live gc.pid,
    a *.lock held or recent) is skipped and reported; a stale lock is cleared and
    reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repositories: list[str] = Field(min_length=1, description="Absolute globs on the host "
                                    "(** for any depth); bare repositories or work trees; "
                                    "symlinks are not followed.", examples=[["/srv/git/**/*.git"]])
    thresholds: Thresholds = Field(Thresholds(), description="When a repository needs each "
                                   "task.", examples=[{"loose_objects": 6700, "packs": 50}])
    fsck: Fsck | None = Field(None, description="Check repositories with git fsck --full.",
                              examples=[{"frequency": "1w"}])
    prune_after: Duration = Field(1209600, description="Unreachable objects older than this "
                                  "are pruned (git's gc.pruneExpire, 2 weeks).", examples=["2w"])
    stale_lock: Duration = Field(3600, description="A *.lock no process holds and older than "
                                 "this was left by a crash: it is removed.", examples=["1h"])
    nice: bool = Field(True, description="Run git under nice -n 19 and ionice -c 3 (idle).",
                       examples=[True])

    @field_validator("repositories")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith("/"):
                raise ValueError(f"{pattern!r}: expected an absolute path or glob, e.g. "
                                 "/srv/git/**/*.git")
        return value


class Journal(BaseModel):
    """The systemd journal vacuumed to a size (journalctl --vacuum-size: archived files
    only, oldest first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_size: str = Field(description="The most the journal may keep on disk, in journald's "
                          "units (K, M, G, T: powers of 1024).", examples=["500M"])

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9]\d*[KMGT]?", value):
            raise ValueError(f"expected a size such as 500M or 2G, got {value!r}")
        return value


class OldFiles(BaseModel):
    """Files and links in a folder older than an age (by modification time), and the
    folders left empty that old; symlinks are removed as links, never followed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="An absolute folder (not a symlink, not /).",
                      examples=["/var/tmp"])
    older_than: Duration = Field(description="Files not modified for this long go.",
                                 examples=["14d"])

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "":
            raise ValueError(f"expected an absolute folder other than /, got {value!r}")
        return value.rstrip("/")


class Cleanup(BaseModel):
    """Disk space given back: the journal, the apt cache, old files; the bytes reclaimed
    are reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    journal: Journal | None = Field(None, description="Vacuum the journal to a size.",
                                    examples=[{"max_size": "500M"}])
    apt_cache: bool = Field(False, description="Empty the apt cache (apt-get clean).",
                            examples=[True])
    paths: list[OldFiles] = Field([], description="Folders cleaned of old files.",
                                  examples=[[{"path": "/var/tmp", "older_than": "14d"}]])


class Packages(BaseModel):
    """Package updates with apt, as unattended-upgrades makes them: never a removal or a
    new package, the old config files kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upgrade: Literal["security", "all"] = Field("security", description="security: only "
                                                "versions from a security archive (a suite "
                                                "ending in -security); all: every upgrade.",
                                                examples=["security"])
    hold: list[str] = Field([], description="Packages never upgraded, as globs (what "
                            "unattended-upgrades calls Package-Blacklist).",
                            examples=[["postgresql-15", "linux-image-*"]])


class Reboot(BaseModel):
    """Reboots in waves: the policy's hosts converge `batch` at a time; a host that asks
    for a reboot (or every host, with when_required false) reboots at the end of its
    maintenance, and the next wave starts only once it is back and passes `health`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when_required: bool = Field(True, description="Reboot only a host that asks for it "
                                "(/run/reboot-required, as unattended-upgrades' "
                                "Automatic-Reboot); false: every host, every run in the window.",
                                examples=[True])
    batch: Size = Field(1, description="Hosts per wave, a count or a percentage.",
                        examples=[1, "25%"])
    max_fail_percentage: float = Field(0, ge=0, le=100, description="Stop the waves left once "
                                       "more than this share of the hosts failed; 0: the first "
                                       "failure stops them.", examples=[0])
    health: list[Health] = Field([], description="Checked on each host of a wave once it is "
                                 "back (the commands all pass, and the HTTP probe answers).",
                                 examples=[[{"command": "systemctl is-system-running --wait"}]])
    timeout: Duration = Field(600, description="How long a host may take to come back and "
                              "pass its health check.", examples=["10m"])
    delay: Duration = Field(5, description="Wait between tries while it is not back.",
                            examples=["5s"])

    @field_validator("health")
    @classmethod
    def _one_probe(cls, value: list[Health]) -> list[Health]:
        if sum(1 for h in value if h.http is not None) > 1:
            raise ValueError("expected at most one http check")
        return value


class MaintenanceSpec(BaseModel):
    """Maintenance that acts only in its window and only where it is needed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Window | None = Field(None, description="When the policy may act (default: at "
                                  "every run); outside it, a run only reports what is pending.",
                                  examples=[{"days": ["sat", "sun"], "start": "02:00",
                                             "duration": "3h", "timezone": "Europe/Rome"}])
    git: Git | None = Field(None, description="Git repository housekeeping.",
                            examples=[{"repositories": ["/srv/git/**/*.git"],
                                       "fsck": {"frequency": "1w"}}])

    packages: Packages | None = Field(None, description="Package updates with apt; check "
                                      "mode lists what would be upgraded.",
                                      examples=[{"upgrade": "security", "hold": ["postgresql-15"]}])
    restart_services: bool = Field(False, description="After the upgrades, restart the "
                                   "services needrestart lists as using replaced files, then "
                                   "check each is active (false: only report them).",
                                   examples=[True])
    reboot: Reboot | None = Field(None, description="Reboot in waves after the maintenance "
                                  "(the run service's waves: batch, health, failure budget).",
                                  examples=[{"when_required": True, "batch": 1,
                                             "health": [{"command": "systemctl is-system-running --wait"}]}])
    cleanup: Cleanup | None = Field(None, description="Disk cleanup.",
                                    examples=[{"journal": {"max_size": "500M"}, "apt_cache": True,
                                               "paths": [{"path": "/var/tmp", "older_than": "14d"}]}])

    @model_validator(mode="after")
    def _something(self) -> MaintenanceSpec:
        if self.git is None and self.cleanup is None and self.packages is None \
                and self.reboot is None:
            raise ValueError("expected something to maintain: git, packages, reboot or cleanup")
        if self.restart_services and self.packages is None:
            raise ValueError("restart_services restarts what package updates leave: set packages")
        return self
