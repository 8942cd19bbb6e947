"""A fleet in pull mode: every host runs `opsagent daemon` (as the shipped systemd unit
does) pulling its policies over SSH from a git server on one more fleet host, and a
Prometheus on this machine scrapes them all. Used by tests/integration/test_pull_fleet.py
and bench/pull.py.

opsagent reaches the hosts as this machine has it: the project folder and the Python it
runs on are bind-mounted read-only at the same paths inside each host, and
/usr/local/bin/opsagent links to the venv's script, the path the unit runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.fleet import host as hosts
from tests.fleet.fleet import Fleet, keygen
from tests.fleet.host import Host
from tests.fleet.net import FleetError

REPO = Path(__file__).resolve().parents[2]
PORT = 9469
REPOSITORY = "/srv/git/policies.git"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: app}
targets: [all]
schedule: {every: 5m}
spec:
  tasks:
    - name: app folder
      files.directory: {path: /srv/app, mode: "755"}
    - name: app config
      files.template: {src: app.conf.j2, dest: /srv/app/app.conf, mode: "644", release: %(release)s}
    - name: motd
      files.line: {path: /etc/motd, line: "managed by opsagent (pull)"}
    - name: state folder
      files.directory: {path: /var/lib/app, mode: "700"}
    - name: first boot marker (guarded)
      server.shell: {commands: ["date -u +%%FT%%TZ > /var/lib/app/first-boot"]}
      unless: "test -s /var/lib/app/first-boot"
"""
TEMPLATE = "release {{ release }}\nhost {{ host.name }}\n"


@dataclass
class PullFleet:
    fleet: Fleet
    work: Path  # the operator's clone and keys, Prometheus's folder
    interval: str = "10s"
    warm: bool = True  # warm_runs in agent.yml
    agents: list[Host] = field(default_factory=list)
    server: Host | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ssh://git@{self.server.address}{REPOSITORY}#main"

    def up(self, count: int) -> None:
        """count agent hosts and a git server, the first commit pushed, every daemon started."""
        made = self.fleet.up(count + 1)
        self.agents, self.server = made[:-1], made[-1]
        keygen(self.work / "deploy_key")
        self._serve_git()
        self.commit("v1", "first release")
        for h in self.agents:
            self._install(h)
        for h in self.agents:
            self.start(h)

    # -- the git server and the operator's commits ---------------------------------------

    def _serve_git(self) -> None:
        assert self.server is not None
        keys = (self.work / "deploy_key.pub").read_text() + \
            self.fleet.client_key.with_suffix(".pub").read_text()
        self.fleet.run(self.server.name, (
            "useradd --create-home --password '*' --shell /usr/bin/git-shell git && "
            "install -d -m 700 -o git -g git /home/git/.ssh /srv/git && "
            f"printf %s {shlex.quote(keys)} > /home/git/.ssh/authorized_keys && "
            "chown git:git /home/git/.ssh/authorized_keys && "
            f"su -s /bin/sh git -c 'git init --quiet --bare -b main {REPOSITORY}'"))
        clone = self.work / "operator"
        clone.mkdir(parents=True)
        self._git("init", "--quiet", "-b", "main")
        self._git("remote", "add", "origin", self.url.removesuffix("#main"))

    def commit(self, release: str, message: str, text: str | None = None) -> str:
        """Commit the policy at this release (or `text` as it) and push; the commit's id."""
        clone = self.work / "operator"
        (clone / "policies").mkdir(exist_ok=True)
        (clone / "templates").mkdir(exist_ok=True)
        (clone / "policies" / "app.yml").write_text(text or POLICY % {"release": release})
        (clone / "templates" / "app.conf.j2").write_text(TEMPLATE)
        self._git("add", "-A")
        self._git("-c", "user.name=Operator", "-c", "user.email=ops@example.org", "commit",
                  "--quiet", "-m", message)
        self._git("push", "--quiet", "origin", "main")
        return self._git("rev-parse", "HEAD")

    def _git(self, *args: str) -> str:
        ssh = (f"ssh -F /dev/null -i {self.fleet.client_key} -o BatchMode=yes "
               f"-o UserKnownHostsFile={self.fleet.known_hosts} -o StrictHostKeyChecking=yes")
        done = subprocess.run(["git", "-C", str(self.work / "operator"), *args],
                              capture_output=True, text=True, check=False, timeout=60,
                              env={**os.environ, "GIT_SSH_COMMAND": ssh})
        if done.returncode != 0:
            raise FleetError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    # -- opsagent on each host -------------------------------------------------------------

    def _install(self, h: Host) -> None:
        """opsagent as this machine runs it, its settings, and a key to read the repository."""
        assert self.server is not None
        init = hosts.init_pid(h, self.fleet.net)
        for path in _binds():
            inside = h.path(str(path))
            subprocess.run(["nsenter", "-t", str(init), "-m", "sh", "-c",
                            f"mkdir -p {inside} && mount --bind {path} {inside} && "
                            f"mount -o remount,bind,ro {inside}"], check=True,
                           capture_output=True)
        link = h.path("/usr/local/bin/opsagent")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(sys.prefix) / "bin" / "opsagent")
        ssh = h.path("/root/.ssh")
        ssh.mkdir(mode=0o700, exist_ok=True)
        for suffix in ("", ".pub"):
            (ssh / f"id_ed25519{suffix}").write_bytes((self.work / f"deploy_key{suffix}").read_bytes())
        (ssh / "id_ed25519").chmod(0o600)
        server_key = (self.fleet.dir / "hostkeys" / self.server.name / "ssh_host_ed25519_key.pub")
        kind, key = server_key.read_text().split()[:2]
        (ssh / "known_hosts").write_text(f"{self.server.address} {kind} {key}\n")
        config = h.path("/etc/opsagent/agent.yml")
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"# this host's daemon: policies from git, /metrics for Prometheus\n"
                          f"listen: 0.0.0.0:{PORT}\nlog_format: json\n"
                          f"warm_runs: {str(self.warm).lower()}\n"
                          f"pull: {{url: '{self.url}', interval: {self.interval}}}\n")

    def start(self, h: Host) -> None:
        """The daemon as the unit starts it (its command, state folder and umask)."""
        self.fleet.run(h.name, (
            "mkdir -p -m 700 /var/lib/opsagent && cd / && umask 077 && "
            f"env -i PATH={PATH} HOME=/root LANG=C.UTF-8 OPSAGENT_STATE_DIR=/var/lib/opsagent "
            "setsid /usr/local/bin/opsagent daemon --config /etc/opsagent/agent.yml "
            "</dev/null >>/var/log/opsagent.log 2>&1 &"))

    def release(self, h: Host) -> str:
        """The release the host's app config says it runs ('' before the first run)."""
        try:
            text = h.path("/srv/app/app.conf").read_text()
        except OSError:
            return ""
        return text.split()[1] if text.startswith("release ") else ""

    def wait_release(self, release: str, timeout: float = 120) -> dict[str, float]:
        """Wait until every agent host runs `release`; when each got there (monotonic)."""
        at: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(at) < len(self.agents):
            for h in self.agents:
                if h.name not in at and self.release(h) == release:
                    at[h.name] = time.monotonic()
            if time.monotonic() > deadline:
                behind = {h.name: self.release(h) for h in self.agents if h.name not in at}
                raise FleetError(f"not at {release} after {timeout:g} s: {behind}")
            time.sleep(0.05)
        return at

    def metrics(self, h: Host) -> str:
        with urllib.request.urlopen(f"http://{h.address}:{PORT}/metrics", timeout=10) as r:
            text: str = r.read().decode()
        return text

    def events(self, h: Host) -> list[dict[str, object]]:
        lines = h.path("/var/log/opsagent.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def daemon_pids(self, h: Host) -> dict[str, int]:
        """The daemon and its fork server, seen from this machine."""
        found = {}
        for pid in self.fleet.net.pids(h.index):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"agent.daemon.forkserver" in args:
                found["fork server"] = pid
            elif b"daemon" in args and any(a.endswith(b"/opsagent") for a in args[:2]):
                found["daemon"] = pid
        return found


def _binds() -> list[Path]:
    """The project, the venv and the Python under it, outermost only; never /usr itself."""
    paths = sorted({REPO, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()})
    out: list[Path] = []
    for path in paths:
        if str(path) in ("/", "/usr") or any(path.is_relative_to(p) for p in out):
            continue
        out.append(path)
    return out


def usage(pids: dict[str, int]) -> tuple[float, float, int]:
    """CPU seconds of the processes themselves, CPU seconds of their children reaped so
    far (git fetches, validations, runs), and resident KiB, each summed over pids."""
    own, children, rss = 0.0, 0.0, 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids.values():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own += (int(fields[11]) + int(fields[12])) / tick
        children += (int(fields[13]) + int(fields[14])) / tick
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        rss += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return own, children, rss
