"""Real sshd processes on loopback, each with its own host key, config and port.

Key-only auth, no PAM; they share this machine's filesystem, so give each host its
own folder. Used by the integration tests and by bench/.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {keys}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
MaxStartups 1000:30:1000
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel {log_level}
# root's shell start-up files are slow here; commands should not pay for them
SetEnv SHLVL=1
"""


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Keys:
    dir: Path

    @property
    def client(self) -> Path:
        return self.dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @classmethod
    def make(cls, directory: Path) -> Keys:
        directory.mkdir(parents=True, exist_ok=True)
        keys = cls(directory)
        keygen(keys.client)
        shutil.copy(keys.dir / "client_key.pub", keys.dir / "authorized_keys")
        keys.known_hosts.write_text("")
        return keys


class Sshd:
    def __init__(self, keys: Keys, directory: Path, port: int | None = None,
                 log_level: str = "ERROR") -> None:
        """log_level VERBOSE logs each command run ("Starting session: command")."""
        self.keys = keys
        self.log_level = log_level
        self.dir = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "host_key").exists():
            keygen(self.dir / "host_key")
        config = self.dir / "sshd_config"
        config.write_text(CONFIG.format(port=self.port, dir=self.dir, keys=self.keys.dir,
                                        log_level=self.log_level))
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        with open(self.dir / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
        pub = (self.dir / "host_key.pub").read_text().split()
        with self.keys.known_hosts.open("a") as f:
            f.write(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        return self

    def wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.dir / "sshd.log").read_text()
                raise RuntimeError(f"sshd on port {self.port} exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"sshd on port {self.port} did not answer in {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def inventory_yaml(keys: Keys, hosts: dict[str, int], host_vars: dict[str, dict[str, str]]) -> str:
    """An opsagent inventory naming each sshd as a host."""
    lines = [
        "ssh:",
        f"  user: {getpass.getuser()}",
        f"  key: {keys.client}",
        f"  known_hosts_file: {keys.known_hosts}",
        "  config_file: /dev/null",
        "  strict_host_key_checking: 'yes'",
        "hosts:",
    ]
    for name, port in hosts.items():
        variables = ", ".join(f"{k}: {v!r}" for k, v in host_vars.get(name, {}).items())
        lines.append(f"  {name}: {{ssh: {{hostname: 127.0.0.1, port: {port}}}, vars: {{{variables}}}}}")
    return "\n".join(lines) + "\n"
