"""borg command lines for one repository, as pure functions of the spec: tested as tuples."""

from __future__ import annotations

import hashlib
import shlex

from agent.kinds.backup.spec import BackupSpec

HOST_STATE = "/var/lib/opsagent/backup"
ARCHIVE_TIME = "{now:%Y-%m-%dT%H:%M:%S}"
# a repository to make: none there, or one an earlier init left half-made (no manifest)
MISSING = r"does not exist|is not a valid repository|Repository has no manifest"

# Before `borg init`: the passphrase must be readable (else borg makes half a repository:
# a config and no manifest); a half-made local repository (a config, no segment at all:
# a finished init always writes its manifest into one) holds nothing and is made anew.
INIT_SCRIPT = (
    'state=$0 repo=$1; shift\n'
    'if [ -n "${BORG_PASSCOMMAND:-}" ] && ! sh -c "$BORG_PASSCOMMAND" >/dev/null; then\n'
    '  echo "cannot read the passphrase ($BORG_PASSCOMMAND failed): the repository was not '
    'made" >&2; exit 2\n'
    'fi\n'
    'if [ -f "$repo/config" ] && [ -d "$repo/data" ] && [ -z "$(find "$repo/data" -type f | '
    'head -n 1)" ]; then\n'
    '  echo "making anew the half-made repository $repo (an earlier init failed part-way; it '
    'held no archives)" >&2; rm -rf "$repo"\n'
    'fi\n'
    'rm -f "$state"/check-*; exec "$@"\n'
)
PERMANENT = r"passphrase supplied .* is incorrect|does not exist|is not a valid repository"

# An online, consistent copy through SQLite's backup API: readers and writers may go on.
SQLITE_DUMP = (
    "import os,sqlite3,sys\n"
    "os.makedirs(os.path.dirname(sys.argv[2]),mode=0o700,exist_ok=True)\n"
    "src=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True)\n"
    "dst=sqlite3.connect(sys.argv[2]+'.part')\n"
    "src.backup(dst);dst.close();src.close()\n"
    "os.replace(sys.argv[2]+'.part',sys.argv[2])\n"
)


class Borg:
    """The commands for one spec on one host; `prefix` selects this host's archives."""

    def __init__(self, spec: BackupSpec, prefix: str, binary: str = "borg") -> None:
        self.spec = spec
        self.repo = spec.repository
        self.prefix = prefix
        self.borg = binary
        self.lock = ("--lock-wait", str(spec.lock_wait))

    @property
    def glob(self) -> str:
        return self.prefix + "*"

    @property
    def state_dir(self) -> str:
        """Where this repository's check stamps and staged dumps live on the host."""
        return f"{HOST_STATE}/{hashlib.sha256(self.repo.encode()).hexdigest()[:12]}"

    @property
    def dumps_dir(self) -> str:
        return f"{self.state_dir}/dumps"

    def init(self) -> tuple[str, ...]:
        """Make the repository; a new one at an old path forgets the old one's check stamps.
        The passphrase is checked first, and a half-made local repository made anew."""
        local = self.repo if self.repo.startswith("/") else ""  # remote ones are not looked into
        return ("sh", "-c", INIT_SCRIPT, self.state_dir, local, self.borg, "init",
                "--encryption", self.spec.encryption, "--make-parent-dirs", *self.lock,
                self.repo)

    def exists(self) -> tuple[str, ...]:
        """Reads the manifest: fails on a missing repository and on a wrong passphrase."""
        return (self.borg, "list", "--short", "--last", "1", *self.lock, self.repo)

    def create(self) -> tuple[str, ...]:
        excludes = [arg for pattern in self.spec.exclude for arg in ("--exclude", pattern)]
        sources = [*self.spec.sources, *([self.dumps_dir] if self.spec.databases else [])]
        return (self.borg, "create", "--json", "--compression", self.spec.compression,
                *self.lock, *excludes, f"{self.repo}::{self.prefix}{ARCHIVE_TIME}", *sources)

    def recent(self, seconds: int) -> tuple[str, ...]:
        """Exits 0 when this host's newest archive is younger than `seconds`."""
        script = ('t=$("$0" list --last 1 --glob-archives "$1" --format "{time:%s}{NL}" "$2")'
                  ' && [ -n "$t" ] && [ "$t" -gt $(( $(date +%s) - $3 )) ]')
        return ("sh", "-c", script, self.borg, self.glob, self.repo, str(seconds))

    def prune(self, dry_run: bool = False) -> tuple[str, ...]:
        assert self.spec.retention is not None
        rules = [arg for key, value in self.spec.retention.rules().items()
                 for arg in ("--" + key.replace("_", "-"), str(value))]
        return (self.borg, "prune", "--list", *(["--dry-run"] if dry_run else []),
                "--glob-archives", self.glob, *rules, *self.lock, self.repo)

    def compact(self) -> tuple[str, ...]:
        return (self.borg, "compact", *self.lock, self.repo)

    def check(self, name: str) -> tuple[str, ...]:
        if name == "repository":
            return (self.borg, "check", "--repository-only", *self.lock, self.repo)
        if name == "archives":
            return (self.borg, "check", "--archives-only", "--glob-archives", self.glob,
                    *self.lock, self.repo)
        assert name == "extract"
        script = ('a=$("$0" list --short --last 1 --glob-archives "$1" "$2") && [ -n "$a" ]'
                  ' && "$0" extract --dry-run "$2::$a"')
        return ("sh", "-c", script, self.borg, self.glob, self.repo)

    def statistics(self) -> tuple[str, ...]:
        """Three JSON documents: the repository's (sizes), this host's archive list, and the
        host's UTC offset (borg 1.2 gives archive times in the host's local time, unmarked)."""
        script = ('"$0" info --json "$1" && "$0" list --json --glob-archives "$2" "$1" && '
                  'date +\'{"utc_offset": "%z"}\'')
        return ("sh", "-c", script, self.borg, self.repo, self.glob)

    def archives(self) -> tuple[str, ...]:
        return (self.borg, "list", "--json", "--glob-archives", self.glob, *self.lock, self.repo)

    def extract(self, archive: str, to: str, paths: list[str]) -> tuple[str, ...]:
        """Extract into `to` (new or empty) on the host; archive `latest`: this host's newest.

        Prints the archive's name first. Paths are given as in the sources (/etc/hosts)."""
        script = (
            'b=$0 g=$1 r=$2 to=$3 a=$4 w=$5; shift 5\n'
            'if [ -n "$(ls -A "$to" 2>/dev/null)" ]; then\n'
            '  echo "$to is not empty: restore into a new or empty folder" >&2; exit 2; fi\n'
            'if [ "$a" = latest ]; then a=$("$b" list --short --last 1 --glob-archives "$g" '
            '--lock-wait "$w" "$r") || exit 2\n'
            '  [ -n "$a" ] || { echo "no archive matching $g in $r" >&2; exit 2; }; fi\n'
            'echo "$a"; mkdir -p "$to" && cd "$to" && '
            'exec "$b" extract --lock-wait "$w" "$r::$a" "$@"'
        )
        relative = [path.lstrip("/") for path in paths]
        return ("sh", "-c", script, self.borg, self.glob, self.repo, to, archive,
                str(self.spec.lock_wait), *relative)

    def dump(self, path: str, name: str) -> tuple[str, ...]:
        return ("python3", "-c", SQLITE_DUMP, path, f"{self.dumps_dir}/{name}")

    def remove_dumps(self) -> tuple[str, ...]:
        return ("rm", "-rf", self.dumps_dir)

    def env(self) -> dict[str, str]:
        """borg's environment; the passphrase file's path is no secret, its content is."""
        env = {"BORG_RSH": self.spec.ssh_command, "LC_ALL": "C.UTF-8"}
        ref = self.spec.passphrase
        if ref is not None and ref.file is not None:
            env["BORG_PASSCOMMAND"] = "cat " + shlex.quote(ref.file)
        if self.spec.encryption == "none":
            env["BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"] = "yes"
        return env
