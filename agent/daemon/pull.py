"""Pull mode: the policy repository fetched before each cycle, fast-forwards only.

A new commit is exported to a folder of its own and offered to the daemon; it becomes
the good commit only if the policy set in it validates. A commit that is not a
fast-forward of the good one (a force-push, a rewritten branch) is refused, and so is
one that fails validation or whose files add up to more than MAX_CHECKOUT_BYTES: the
last good checkout keeps running. The good commit is kept as a ref in the local bare
repository, so a restart resumes from it.

`git fetch` runs as a child process that the daemon's loop polls (start_fetch, then
poll_fetch), so a hanging server never holds up runs, /healthz or a stop: a fetch is
killed after FETCH_TIMEOUT, and over HTTP git itself gives up on a transfer slower
than 1 KB/s for 30 s. What a refused commit brought is pruned from the repository.

Trust: a pulled commit runs as the daemon's user, root usually. Credentials (in the URL,
or username/password) are never on git's command line, where `ps` shows them to every
user, nor in any message: git gets them from a credential helper that reads them from
its environment. With signed_by, a commit is run only if `git verify-commit` finds it
signed by one of those keys (SSH keys through an allowed-signers file; OpenPGP keys by
fingerprint, from the daemon's keyring); any other is refused like a force-push.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit, urlunsplit

from agent.core.secrets import Secret, SecretError, SecretRef

GOOD = "refs/opsagent/good"
FETCHED = "refs/opsagent/fetched"
FETCH_TIMEOUT = 300.0
MAX_CHECKOUT_BYTES = 64 * 1024 * 1024
LOW_SPEED = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30")
# reads the credentials from the environment git passes on to it; no other helper is asked
HELPER = ('!f() { test "$1" = get || exit 0; echo "username=$OPSAGENT_GIT_USERNAME"; '
          'echo "password=$OPSAGENT_GIT_PASSWORD"; }; f')


class PullError(RuntimeError):
    pass


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without user and password, and them (percent-decoded)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return (urlunsplit(parts._replace(netloc=host)), unquote(user) or None,
            unquote(password) or None)


def insecure(url: str) -> bool:
    """Fetched unauthenticated and unencrypted: anyone on the path can change what runs."""
    return url.startswith(("http://", "git://"))


class Puller:
    def __init__(self, url: str, workdir: Path, username: str | None = None,
                 password: SecretRef | None = None, signed_by: Sequence[str] = ()) -> None:
        url, _, self.branch = url.partition("#")
        self.url, in_user, in_password = split_credentials(url)
        self.username = username or in_user
        self.password = password
        self.in_password = Secret(in_password) if in_password else None  # masked in logs
        self.signed_by = tuple(signed_by)
        self.workdir = workdir
        self.repo = workdir / "repo.git"
        self.good: str | None = None
        self.candidate: str | None = None
        self.refused: str | None = None
        self.fetch_proc: subprocess.Popen[bytes] | None = None
        self.fetch_err: IO[bytes] | None = None
        self.fetch_deadline = 0.0
        if (self.repo / "HEAD").exists():
            self.good = self._rev(GOOD)
            if self.good and not self._dir(self.good).is_dir():
                self._export(self.good)

    @property
    def checkout(self) -> Path | None:
        """The folder to load policies from: the commit on trial, else the good one."""
        commit = self.candidate or self.good
        return self._dir(commit) if commit else None

    @property
    def fetching(self) -> bool:
        return self.fetch_proc is not None

    def start_fetch(self) -> None:
        """Begin `git fetch` in a child process; poll_fetch() tells when it is done."""
        if not (self.repo / "HEAD").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare")
        source = f"refs/heads/{self.branch}" if self.branch else "HEAD"
        env = self._credentials(_git_env())
        self.fetch_err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll_fetch)
        self.fetch_proc = subprocess.Popen(
            ["git", *LOW_SPEED, "-C", str(self.repo), "fetch", "--quiet", "--no-tags", "--force",
             "--", self.url, f"+{source}:{FETCHED}"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.fetch_err, env=env,
            start_new_session=True)
        self.fetch_deadline = time.monotonic() + FETCH_TIMEOUT

    def _credentials(self, env: dict[str, str]) -> dict[str, str]:
        """env with the credential helper and what it hands git, if there are credentials."""
        password = self.in_password
        if self.password is not None:
            try:
                password = self.password.resolve()
            except SecretError as e:
                raise PullError(f"git fetch {self.url}: the password: {e}") from None
        if password is None and self.username is None:
            return env
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
        env.update({"GIT_CONFIG_COUNT": str(count + 2),
                    f"GIT_CONFIG_KEY_{count}": "credential.helper",  # empty: forget the others
                    f"GIT_CONFIG_VALUE_{count}": "",
                    f"GIT_CONFIG_KEY_{count + 1}": "credential.helper",
                    f"GIT_CONFIG_VALUE_{count + 1}": HELPER,
                    "OPSAGENT_GIT_USERNAME": self.username or "",
                    "OPSAGENT_GIT_PASSWORD": password.reveal() if password else ""})
        return env

    def poll_fetch(self) -> bool | None:
        """None while the fetch runs; then True if a new fast-forward commit is on trial
        (see accept/reject), False if nothing new. Raises PullError."""
        proc = self.fetch_proc
        assert proc is not None and self.fetch_err is not None
        if proc.poll() is None:
            if time.monotonic() < self.fetch_deadline:
                return None
            self.stop_fetch()
            raise PullError(f"git fetch {self.url}: no answer within {FETCH_TIMEOUT:g} s")
        self.fetch_err.seek(0)
        lines = self.fetch_err.read().decode(errors="replace").strip().splitlines()
        self.fetch_err.close()
        self.fetch_proc = self.fetch_err = None
        if proc.returncode != 0:
            raise PullError(f"git fetch {self.url}: {lines[-1] if lines else proc.returncode}")
        return self._fetched()

    def stop_fetch(self) -> None:
        if self.fetch_proc is not None:
            if self.fetch_proc.poll() is None:
                os.killpg(self.fetch_proc.pid, signal.SIGKILL)
                self.fetch_proc.wait()
            assert self.fetch_err is not None
            self.fetch_err.close()
            self.fetch_proc = self.fetch_err = None

    def _fetched(self) -> bool:
        new = self._rev(FETCHED)
        if new is None or new in (self.good, self.refused):
            return False
        if self.good and not self._is_ancestor(self.good, new):
            self.refused = new
            raise PullError(f"{self.url} {self.branch or 'HEAD'} is now {new[:12]}, which does "
                            f"not contain {self.good[:12]}: not a fast-forward, refused; "
                            f"keeping {self.good[:12]}")
        if self.signed_by and not self._signed(new):
            self._refuse(new)
            raise PullError(f"{self.url} {new[:12]}: not signed by a trusted key (pull.verify."
                            f"signed_by): refused; keeping {(self.good or 'nothing')[:12]}")
        size = self._tree_bytes(new)
        if size > MAX_CHECKOUT_BYTES:
            self._refuse(new)
            raise PullError(f"{self.url} {new[:12]}: its files add up to {size // 1048576} MiB, "
                            f"more than {MAX_CHECKOUT_BYTES // 1048576} MiB: refused; keeping "
                            f"{(self.good or 'nothing')[:12]}")
        self._export(new)
        self.candidate = new
        return True

    def _signed(self, commit: str) -> bool:
        """git verify-commit: a good signature by an SSH key of signed_by (the allowed
        signers file holds only those), or by an OpenPGP key whose fingerprint is listed."""
        ssh = [k for k in self.signed_by if not _is_fingerprint(k)]
        fingerprints = {k.replace(" ", "").upper() for k in self.signed_by if _is_fingerprint(k)}
        allowed = self.workdir / "allowed_signers"
        allowed.write_text("".join(f'opsagent namespaces="git" {key}\n' for key in ssh))
        done = subprocess.run(["git", "-C", str(self.repo), "-c",
                               f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", "--raw",
                               commit], capture_output=True, text=True, env=_git_env(),
                              timeout=60, check=False)
        if done.returncode != 0:
            return False
        out = done.stdout + done.stderr
        if 'Good "git" signature for opsagent' in out:
            return bool(ssh)
        valid = [line.split() for line in out.splitlines() if line.startswith("[GNUPG:] VALIDSIG")]
        return any(fpr in fingerprints for parts in valid for fpr in (parts[2], parts[-1]))

    def _refuse(self, commit: str) -> None:
        """Remember the commit as refused, and drop what it brought from the repository
        (it is fetched again at the next pull if the branch still points at it)."""
        self.refused = commit
        self._git("update-ref", "-d", FETCHED)
        self._git("reflog", "expire", "--expire=now", "--all")
        self._git("gc", "--quiet", "--prune=now")

    def _tree_bytes(self, commit: str) -> int:
        done = subprocess.run(["git", "-C", str(self.repo), "ls-tree", "-r", "-l", "--full-tree",
                               commit], capture_output=True, text=True, check=False)
        total = 0
        for line in done.stdout.splitlines():
            size = line.split(None, 4)[3]
            total += int(size) if size.isdigit() else 0
        return total

    def accept(self) -> None:
        if self.candidate is None:
            return
        self._git("update-ref", GOOD, self.candidate)
        old, self.good, self.candidate = self.good, self.candidate, None
        if old and old != self.good:
            shutil.rmtree(self._dir(old), ignore_errors=True)
        self._git("gc", "--auto", "--quiet")

    def reject(self) -> None:
        if self.candidate is None:
            return
        shutil.rmtree(self._dir(self.candidate), ignore_errors=True)
        self.refused, self.candidate = self.candidate, None

    def _dir(self, commit: str) -> Path:
        return self.workdir / "checkouts" / commit

    def _export(self, commit: str) -> None:
        target = self._dir(commit)
        if target.is_dir():
            return
        tmp = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".export-"))
        try:
            archive = tmp / "tree.tar"
            self._git("archive", "--format=tar", f"--output={archive}", commit)
            (tmp / "tree").mkdir()
            done = subprocess.run(["tar", "-x", "--no-same-owner", "-f", str(archive), "-C",
                                   str(tmp / "tree")], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PullError(f"unpacking {commit[:12]}: {done.stderr.strip()}")
            target.parent.mkdir(parents=True, exist_ok=True)
            (tmp / "tree").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _rev(self, ref: str) -> str | None:
        done = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "--verify", "--quiet",
                               f"{ref}^{{commit}}"], capture_output=True, text=True, check=False)
        return done.stdout.strip() or None

    def _is_ancestor(self, old: str, new: str) -> bool:
        done = subprocess.run(["git", "-C", str(self.repo), "merge-base", "--is-ancestor", old, new],
                              capture_output=True, check=False)
        return done.returncode == 0

    def _git(self, *args: str) -> None:
        """A local git command (no network): short, run in place."""
        try:
            done = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True,
                                  text=True, env=_git_env(), timeout=120, check=False)
        except subprocess.TimeoutExpired:
            raise PullError(f"git {args[0]} {self.url}: did not finish within 120 s") from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise PullError(f"git {args[0]} {self.url}: {lines[-1] if lines else done.returncode}")


def _is_fingerprint(key: str) -> bool:
    text = key.replace(" ", "")
    return len(text) == 40 and all(c in "0123456789abcdefABCDEF" for c in text)


def _git_env() -> dict[str, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    # over SSH, notice a server that stopped answering (unless the operator chose a command)
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ServerAliveInterval=15 "
                                      "-o ServerAliveCountMax=2")
    return env
