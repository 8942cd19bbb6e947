"""opsagent apply vs the pyinfra CLI vs ansible-playbook vs the physical floor, on the same
work, on SSH hosts.

Run by hand (not in CI):
    .venv/bin/python bench/compare.py [--hosts 1 10 50 200 500] [--reps 3] [--tools ...]

Each host gets: a directory, 20 files with given content, 10 lines ensured in a config
file, and one shell command. Hosts are names for one loopback sshd (as in
../shared/PERF.md), each with its own folder. Cases: first run (empty folders) and
no-op run (already converged). The floor is what that work cannot cost less than: per
host one OpenSSH connection running one shell script that checks all of it (and makes
it, on a first run), all hosts at once. Tools are interleaved (A B C C B A ...); medians
are printed with each tool's time as a ratio of the floor measured in the same run, and
opsagent's peak RSS. "warm" is the same `opsagent apply` handed to an `opsagent warm`
server started for the bench ("opsagent" runs cold, OPSAGENT_COLD). Ansible is skipped
when ansible-playbook is not installed (pip install ansible-core); pyinfra and Ansible
are left out above 50 hosts unless --tools names them (minutes per run). opsagent's modules are compiled first, as installing a
wheel does (an editable install under PYTHONDONTWRITEBYTECODE compiles them on every run).
"""

from __future__ import annotations

import argparse
import compileall
import getpass
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import sshd  # noqa: E402

BIN = Path(sys.executable).parent
FILES = 20
LINES = 10
FLOOR_AT_ONCE = 100  # ssh clients at a time (the loopback sshd takes 1000 at once)
TOOLS = ("floor", "opsagent", "warm", "pyinfra", "ansible")
WARM_SOCKET = Path(tempfile.gettempdir()) / f"opsagent-bench-warm-{os.getpid()}" / "warm.sock"


def write_sources(work: Path) -> None:
    src = work / "templates" / "files"
    src.mkdir(parents=True)
    for i in range(FILES):
        (src / f"f{i:02}.txt").write_text(f"file {i}\n" + "content line\n" * 20)


def opsagent_project(work: Path, names: list[str], keys: sshd.Keys, port: int
                     ) -> Callable[[], int]:
    tasks = ['    - files.directory: {path: "{{ root }}"}']
    tasks += [f'    - files.put: {{src: files/f{i:02}.txt, dest: "{{{{ root }}}}/f{i:02}.txt"}}'
              for i in range(FILES)]
    tasks += [f'    - files.line: {{path: "{{{{ root }}}}/app.conf", line: "key{i} = value{i}"}}'
              for i in range(LINES)]
    tasks += ['    - server.shell: {commands: ["uptime"]}']
    (work / "policies").mkdir()
    (work / "policies" / "bench.yml").write_text(
        "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: bench}\ntargets: [all]\n"
        "spec:\n  tasks:\n" + "\n".join(tasks) + "\n")
    host_vars = {n: {"root": str(work / "out" / "opsagent" / n)} for n in names}
    (work / "inventory.yml").write_text(sshd.inventory_yaml(keys, dict.fromkeys(names, port),
                                                            host_vars))
    cmd = [str(BIN / "opsagent"), "apply", "policies", "-i", "inventory.yml"]
    return lambda: run(cmd, work, {**os.environ, "OPSAGENT_COLD": "1"})


def warm_project(work: Path, names: list[str], keys: sshd.Keys, port: int
                 ) -> Callable[[], int]:
    """The same `opsagent apply`, handed to an `opsagent warm` server (started by main)."""
    (work / "warm").mkdir()
    (work / "warm" / "templates").symlink_to(work / "templates")
    opsagent_project(work / "warm", names, keys, port)  # its own hosts' folders
    cmd = [str(BIN / "opsagent"), "apply", "policies", "-i", "inventory.yml"]
    env = {k: v for k, v in os.environ.items() if k != "OPSAGENT_COLD"}
    return lambda: run(cmd, work / "warm", {**env, "OPSAGENT_WARM_SOCKET": str(WARM_SOCKET)})


def pyinfra_project(work: Path, names: list[str], keys: sshd.Keys, port: int
                    ) -> Callable[[], int]:
    hosts = ",\n".join(
        f'    ("{n}", {{"ssh_hostname": "127.0.0.1", "ssh_port": {port}, "ssh_user": "root", '
        f'"ssh_key": "{keys.client}", "ssh_known_hosts_file": "{keys.known_hosts}", '
        f'"ssh_config_file": "/dev/null", "root": "{work}/out/pyinfra/{n}"}})' for n in names)
    (work / "inventory.py").write_text(f"hosts = [\n{hosts},\n]\n")
    (work / "deploy.py").write_text(f'''
from pyinfra import host
from pyinfra.operations import files, server
root = host.data.root
files.directory(path=root)
for i in range({FILES}):
    files.put(src=f"{work}/templates/files/f{{i:02}}.txt", dest=f"{{root}}/f{{i:02}}.txt")
for i in range({LINES}):
    files.line(path=f"{{root}}/app.conf", line=f"key{{i}} = value{{i}}")
server.shell(commands=["uptime"])
''')
    cmd = [str(BIN / "pyinfra"), "-y", "inventory.py", "deploy.py"]
    return lambda: run(cmd, work)


def ansible_project(work: Path, names: list[str], keys: sshd.Keys, port: int
                    ) -> Callable[[], int] | None:
    playbook = shutil.which("ansible-playbook", path=str(BIN)) or shutil.which("ansible-playbook")
    if playbook is None:
        return None
    lines = ["all:", "  hosts:"]
    for n in names:
        lines += [f"    {n}:", "      ansible_host: 127.0.0.1", f"      ansible_port: {port}",
                  "      ansible_user: root", f"      ansible_ssh_private_key_file: {keys.client}",
                  f"      root: {work}/out/ansible/{n}",
                  # one master connection per inventory name, not one per address
                  f"      ansible_ssh_common_args: >-\n        -o UserKnownHostsFile={keys.known_hosts}"
                  f" -o ControlPath={work}/cp-{n}"]
    (work / "ansible-inventory.yml").write_text("\n".join(lines) + "\n")
    (work / "playbook.yml").write_text(f"""- hosts: all
  gather_facts: false
  tasks:
    - file: {{path: "{{{{ root }}}}", state: directory}}
    - copy: {{src: "{work}/templates/files/f{{{{ '%02d' % item }}}}.txt", dest: "{{{{ root }}}}/f{{{{ '%02d' % item }}}}.txt"}}
      loop: "{{{{ range({FILES}) | list }}}}"
    - lineinfile: {{path: "{{{{ root }}}}/app.conf", line: "key{{{{ item }}}} = value{{{{ item }}}}", create: true}}
      loop: "{{{{ range({LINES}) | list }}}}"
    - shell: uptime
""")
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_FORKS": "50",
           "ANSIBLE_PIPELINING": "True", "PATH": f"{BIN}:/usr/bin:/bin"}
    cmd = [playbook, "-i", "ansible-inventory.yml", "playbook.yml"]
    return lambda: run(cmd, work, env)


def floor_project(work: Path, names: list[str], keys: sshd.Keys, port: int
                  ) -> Callable[[], None]:
    """One ssh per host, all at once, each running one script doing the same work."""
    sums = {i: hashlib.sha1((work / "templates" / "files" / f"f{i:02}.txt").read_bytes())
            .hexdigest() for i in range(FILES)}
    script = ['d="$1"', 'test -d "$d" || mkdir -p "$d"']
    for i in range(FILES):
        source = work / "templates" / "files" / f"f{i:02}.txt"
        script.append(f'echo "{sums[i]}  $d/f{i:02}.txt" | sha1sum -c --status 2>/dev/null || '
                      f'cp {source} "$d/f{i:02}.txt"')  # a first run copies (one host here)
    for i in range(LINES):
        script.append(f'grep -qxF "key{i} = value{i}" "$d/app.conf" 2>/dev/null || '
                      f'echo "key{i} = value{i}" >> "$d/app.conf"')
    script.append("uptime >/dev/null")
    (work / "floor.sh").write_text("\n".join(script) + "\n")
    ssh = ["ssh", "-i", str(keys.client), "-p", str(port), "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={keys.known_hosts}", "-o", "StrictHostKeyChecking=yes",
           "-F", "/dev/null", "-T", f"{getpass.getuser()}@127.0.0.1"]

    def floor() -> None:
        procs = []
        for start in range(0, len(names), FLOOR_AT_ONCE):
            for n in names[start:start + FLOOR_AT_ONCE]:
                with (work / "floor.sh").open("rb") as script_file:
                    procs.append(subprocess.Popen([*ssh, "sh", "-s", "--",
                                                   f"{work}/out/floor/{n}"], stdin=script_file,
                                                  stdout=subprocess.DEVNULL))
            for proc in procs:
                if proc.wait() != 0:
                    raise SystemExit(f"the floor's ssh failed ({proc.returncode})")
            procs = []

    return floor


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    """Run it; its peak RSS in KiB (with the children it waited for)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n"
                             f"{out.read().decode(errors='replace')[-4000:]}")
    return int(usage.ru_maxrss)


def timed(fn: Callable[[], Any]) -> tuple[float, int]:
    start = time.perf_counter()
    rss = fn()
    return time.perf_counter() - start, rss or 0


def measure(n: int, reps: int, keys: sshd.Keys, port: int, tools: list[str]
            ) -> dict[str, dict[str, list[tuple[float, int]]]]:
    times: dict[str, dict[str, list[tuple[float, int]]]] = {}
    makers = {"floor": floor_project, "opsagent": opsagent_project, "warm": warm_project,
              "pyinfra": pyinfra_project,
              "ansible": ansible_project}
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="opsagent-bench-") as tmp:
            work = Path(tmp)
            write_sources(work)
            names = [f"h{i:03}" for i in range(n)]
            made = {tool: makers[tool](work, names, keys, port) for tool in tools}
            order = list(made) if rep % 2 == 0 else list(reversed(made))
            for tool in order:
                fn = made[tool]
                if fn is None:
                    continue
                case = times.setdefault(tool, {"first": [], "no-op": []})
                case["first"].append(timed(fn))
                case["no-op"].append(timed(fn))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 50, 200, 500])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tools", nargs="+", choices=TOOLS[1:],
                        help="default: opsagent, and pyinfra and ansible up to 50 hosts")
    parser.add_argument("--no-ansible", action="store_true", help="skip Ansible (slow at 50 hosts)")
    args = parser.parse_args()
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "agent", quiet=1)
    with tempfile.TemporaryDirectory(prefix="opsagent-bench-sshd-") as tmp:
        keys = sshd.Keys.make(Path(tmp) / "keys")
        server = sshd.Sshd(keys, Path(tmp) / "sshd").start()
        warm = start_warm(Path(tmp) / "warm.log")
        try:
            server.wait()
            print(f"{'hosts':>5} {'case':>6} {'floor':>6} " + " ".join(
                f"{t:>9} {'/floor':>6}" for t in TOOLS[1:]) + f" {'opsagent RSS':>13}")
            for n in args.hosts:
                tools = args.tools or [t for t in TOOLS[1:]
                                       if t in ("opsagent", "warm") or n <= 50]
                if args.no_ansible and "ansible" in tools:
                    tools.remove("ansible")
                times = measure(n, args.reps, keys, server.port, ["floor", *tools])
                for case in ("first", "no-op"):
                    med = {t: statistics.median(s for s, _ in v[case]) for t, v in times.items()}
                    cells = [f"{med[t]:>9.2f} {med[t] / med['floor']:>5.1f}x" if t in med
                             else f"{'-':>9} {'':>6}" for t in TOOLS[1:]]
                    rss = max(r for _, r in times["opsagent"][case]) / 1024
                    print(f"{n:>5} {case:>6} {med['floor']:>6.2f} " + " ".join(cells) +
                          f" {rss:>10.0f} MB", flush=True)
        finally:
            server.stop()
            warm.terminate()
            warm.wait()
            shutil.rmtree(WARM_SOCKET.parent, ignore_errors=True)
    return 0


def start_warm(log: Path) -> subprocess.Popen[bytes]:
    """`opsagent warm` at WARM_SOCKET, serving once its socket is there."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "opsagent"), "warm", "--socket", str(WARM_SOCKET),
                                 "--idle", "8h"], stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while b"serving" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"opsagent warm did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return proc


if __name__ == "__main__":
    raise SystemExit(main())
