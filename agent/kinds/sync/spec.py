"""The `sync` policy's spec: which repositories, on which remotes, kept in step how."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
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
from agent.policy.messages import invalid

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")
_CREDENTIALS = re.compile(r"^[a-z+]+://[^/@]*:[^/@]*@")


def _repository(name: str) -> str:
    if not _REPO.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not a repository name (letters, digits, ., _, - and / "
                         "between parts)")
    return name


Repository = Annotated[str, AfterValidator(_repository)]


class Remote(BaseModel):
    """One organisation's or server's copy of the repositories."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["public"], description="How reports, metrics and refs name "
                      "it (letters, digits, ., _ and -).")
    url: str = Field(examples=["ssh://git@h1/srv/git/public/{repo}.git"], description="Where "
                     "a repository is, with {repo} for its name: ssh://, https://, file:// or "
                     "a path on the host. No credentials in it: use ssh_key.")
    push_only: bool = Field(False, examples=[True], description="Only receives: its own "
                            "commits never count (a disaster-recovery copy); a branch that "
                            "moved there on its own is reported, never overwritten.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"expected letters, digits, ., _ and - (it names refs), got {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "{repo}" not in value:
            raise ValueError("expected {repo} in the URL, where each repository's name goes")
        if _CREDENTIALS.match(value):
            raise ValueError("a URL with a password in it would reach process arguments and "
                             "logs; use ssh_key (a secret reference) instead")
        return value


class Resolve(BaseModel):
    """How a conflict in the files a pattern matches is settled in a merge."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(examples=["CHANGELOG.md"], description="A gitattributes pattern: "
                      "without a slash it matches a file's name at any depth (*.lock).")
    with_: Literal["union", "priority"] = Field(
        alias="with", examples=["union"], description="union: both sides' lines are kept "
        "(git's union merge driver; for changelogs and lists); priority: the version of the "
        "first remote in the policy's order is kept (for generated files and lock files).")


class Branches(BaseModel):
    """How the branches whose names match are kept in step; the first rule that matches wins."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(examples=["release/*"], description="A branch name or shell pattern "
                       "(fnmatch: *, ?, [...]).")
    strategy: Literal["ff-only", "merge"] = Field("ff-only", examples=["merge"], description=(
        "ff-only: remotes that are behind are fast-forwarded to the one ahead; a branch that "
        "diverged is reported and nothing is pushed for it. merge: a diverged branch is "
        "merged (the remotes' heads in the policy's order) in a scratch worktree on the "
        "host; when the merge is clean, or settled by resolve and rerere, and verify "
        "passes, the merge is pushed to every remote (leased: a push that raced a "
        "developer is refused). Any other conflict pushes nothing and is reported with its "
        "files and hunks."))
    verify: str | None = Field(None, examples=["make test"], description="merge: a shell "
                               "command run in the merge's worktree; the merge is pushed only "
                               "when it exits 0. It runs without the SSH key.")
    timeout: Duration = Field(600, examples=["10m"], description="verify fails when it runs "
                              "longer than this.")
    resolve: list[Resolve] = Field(default_factory=list, examples=[[
        {"path": "CHANGELOG.md", "with": "union"}, {"path": "*.lock", "with": "priority"}]],
        description="merge: conflicts settled by rule, per path (first match wins); each "
        "one used is named in the run's output and the audit log. Conflicts resolved once by "
        "a person (a merge commit pushed to a remote) are learnt by git rerere and settled "
        "the same way when they come again.")
    options: list[Literal["ignore-space-change", "ignore-all-space", "ignore-space-at-eol",
                          "ignore-cr-at-eol", "renormalize", "patience",
                          "diff-algorithm=histogram"]] = Field(
        default_factory=list, examples=[["ignore-space-at-eol"]], description="merge: git "
        "merge -X options of the ort strategy.")

    @model_validator(mode="after")
    def _merge_only(self) -> Branches:
        if self.strategy != "merge":
            for name in ("verify", "resolve", "options"):
                if getattr(self, name):
                    raise invalid((name,), "sync", f"{name} is for strategy: merge (this "
                                  f"rule is {self.strategy}: it never merges)", None)
        return self


class Tags(BaseModel):
    """How tags are kept in step."""

    model_config = ConfigDict(extra="forbid")

    sync: bool = Field(True, examples=[False], description="Push each tag a source remote "
                       "has to the remotes that lack it (a tag deleted on a remote is not "
                       "pushed there again).")
    on_conflict: Literal["report", "priority"] = Field(
        "report", examples=["priority"], description="A tag that points at different "
        "objects on different remotes: report (nothing moved) or priority (moved everywhere "
        "to the first source remote's, the old one saved as for a branch).")


class Discover(BaseModel):
    """Repositories found at run time on a gitolite server (`ssh git@host info`)."""

    model_config = ConfigDict(extra="forbid")

    remote: str = Field(examples=["public"], description="The remote (an ssh:// URL whose "
                        "{repo} is the whole path, as gitolite's are) to ask.")
    match: list[str] = Field(default_factory=lambda: ["*"], examples=[["team/*"]],
                             description="Only the repositories whose names match one of "
                             "these shell patterns.")
    exclude: list[str] = Field(default_factory=lambda: ["gitolite-admin"],
                               examples=[["gitolite-admin", "attic/*"]], description="Never "
                               "these (gitolite's own admin repository, by default).")


class Committer(BaseModel):
    """Who the merges are by."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("opsagent sync", examples=["Platform sync"], description="Author and "
                      "committer name of the merge commits.")
    email: str = Field("opsagent-sync@localhost", examples=["sync@example.org"],
                       description="Their e-mail address.")


class SyncSpec(BaseModel):
    """Repositories kept in step across remotes by the target host, in one work mirror each."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    workdir: str = Field("/var/lib/opsagent/sync", examples=["/var/lib/opsagent/sync"],
                         description="Where the host keeps a bare work mirror of each "
                         "repository (with the snapshots of the heads it replaced).")
    remotes: list[Remote] = Field(min_length=2, examples=[[
        {"name": "public", "url": "ssh://git@h1/srv/git/public/{repo}.git"},
        {"name": "internal", "url": "ssh://git@h2/srv/git/internal/{repo}.git"}]],
        description="The copies: at least two, one of them not push_only.")
    repositories: list[Repository] = Field(default_factory=list,
                                           examples=[["api", "web", "infra"]],
                                           description="The repositories' names, put into "
                                           "each remote's {repo}.")
    discover: Discover | None = Field(None, examples=[{"remote": "public"}], description=(
        "Also sync the repositories a gitolite remote lists (its `info` command over SSH), "
        "found on the host at each run."))
    branches: list[Branches] = Field(default_factory=lambda: [Branches(match="*")],
                                     examples=[[{"match": "main"}, {"match": "*"}]],
                                     description="Which branches are kept in step, and how; "
                                     "a branch no rule matches is left alone. Default: every "
                                     "branch, ff-only.")
    deletions: Literal["keep", "propagate"] = Field("keep", examples=["propagate"], description=(
        "A branch deleted on one remote: keep (it stays on the others and is reported) or "
        "propagate (deleted on the others too, where it did not move since the last run). "
        "Its commits stay in the work mirror either way."))
    concurrency: int = Field(4, ge=1, le=64, examples=[8], description="Repositories synced "
                             "at the same time (each remote server is reached over one SSH "
                             "connection, shared).")
    tags: Tags = Field(default_factory=Tags, examples=[{"on_conflict": "priority"}],
                       description="Tags kept in step too: those a remote lacks are pushed.")
    committer: Committer = Field(default_factory=Committer, examples=[
        {"name": "Platform sync", "email": "sync@example.org"}], description="Who the merge "
        "commits are by.")
    retries: int = Field(2, ge=0, le=10, examples=[3], description="Retry a fetch, push or "
                         "ls-remote that failed the way a network fails (connection refused "
                         "or reset, name not resolved, timed out) this often.")
    retry_wait: Duration = Field(2, examples=["5s"], description="Wait before the first "
                                 "retry; doubled after each.")
    keep_snapshots: Duration = Field(90 * 86400, examples=["30d"], description="Saved heads "
                                     "(backup, kept and pushed refs, bundles) of runs older "
                                     "than this are pruned; the newest run's never are.")
    ssh_key: Annotated[SecretRef | None, never_inline(
        "an SSH key", "{file: PATH} or {env: NAME}")] = Field(
        None, examples=[{"file": "/etc/opsagent/sync_key"}], description="The private key git "
        "uses for ssh:// remotes, read on the controller and handed to git on the host through "
        "a private file for the run (never on a command line). Default: the host's own keys.")

    known_hosts: str | None = Field(None, examples=["/etc/opsagent/sync_known_hosts"],
                                    description="A known_hosts file on the host that ssh:// "
                                    "remotes' host keys are checked against (strictly); "
                                    "default: the host user's own.")

    _interval: float | None = PrivateAttr(None)  # the policy's schedule, for the metrics

    @property
    def interval(self) -> float | None:
        return self._interval

    @field_validator("repositories")
    @classmethod
    def _repositories(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name in value[:i]:
                raise invalid((i,), "sync", f"repository {name!r} is listed twice", name)
        return value

    @model_validator(mode="after")
    def _remotes(self, info: ValidationInfo) -> SyncSpec:
        interval = (info.context or {}).get("interval")
        self._interval = float(interval) if interval else None
        names = [r.name for r in self.remotes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise invalid(("remotes", i, "name"), "sync", f"remote name {name!r} is used twice",
                              name)
        if all(r.push_only for r in self.remotes):
            raise invalid(("remotes",), "sync", "every remote is push_only: at least one must be a "
                        "source", None)
        if not self.repositories and self.discover is None:
            raise invalid(("repositories",), "sync", "no repositories: list them, or discover "
                          "them from a gitolite remote", None)
        if self.discover is not None:
            remote = next((r for r in self.remotes if r.name == self.discover.remote), None)
            if remote is None:
                raise invalid(("discover", "remote"), "sync", f"{self.discover.remote!r} is "
                              f"not one of the remotes ({', '.join(names)})", None)
            if not re.match(r"^ssh://[^/]+/\{repo\}(\.git)?$", remote.url):
                raise invalid(("discover", "remote"), "sync", f"remote {remote.name}'s URL "
                              "must be ssh://USER@HOST[:PORT]/{repo}.git (gitolite's) to be "
                              "asked for its repositories", None)
        return self

