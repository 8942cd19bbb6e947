"""opsagent apply vs the pyinfra CLI vs ansible-playbook, on the same work, on SSH hosts.

Run by hand (not in CI):  .venv/bin/python bench/compare.py [--hosts 1 10 50] [--reps 3]

Each host gets: a directory, 20 files with given content, 10 lines ensured in a config
file, and one shell command. Hosts are names for one loopback sshd (as in
../shared/PERF.md), each with its own folder. Cases: first run (empty folders) and
no-op run (already converged). Tools are interleaved (A B C C B A ...) and medians
printed with the ratios opsagent/pyinfra and ansible/opsagent. Ansible is skipped when
ansible-playbook is not installed (pip install ansible-core).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import sshd  # noqa: E402

BIN = Path(sys.executable).parent
FILES = 20
LINES = 10


def write_sources(work: Path) -> None:
    src = work / "templates" / "files"
    src.mkdir(parents=True)
    for i in range(FILES):
        (src / f"f{i:02}.txt").write_text(f"file {i}\n" + "content line\n" * 20)


def opsagent_project(work: Path, names: list[str], keys: sshd.Keys, port: int) -> Callable[[], None]:
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
    return lambda: run(cmd, work)


def pyinfra_project(work: Path, names: list[str], keys: sshd.Keys, port: int) -> Callable[[], None]:
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
                    ) -> Callable[[], None] | None:
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


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-2000:]}")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(n: int, reps: int, keys: sshd.Keys, port: int, ansible: bool
            ) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {}
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="opsagent-bench-") as tmp:
            work = Path(tmp)
            write_sources(work)
            names = [f"h{i:03}" for i in range(n)]
            tools: dict[str, Callable[[], None] | None] = {
                "opsagent": opsagent_project(work, names, keys, port),
                "pyinfra": pyinfra_project(work, names, keys, port),
                "ansible": ansible_project(work, names, keys, port) if ansible else None,
            }
            order = list(tools) if rep % 2 == 0 else list(reversed(tools))
            for tool in order:
                fn = tools[tool]
                if fn is None:
                    continue
                case = times.setdefault(tool, {"first": [], "no-op": []})
                case["first"].append(timed(fn))
                case["no-op"].append(timed(fn))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-ansible", action="store_true", help="skip Ansible (slow at 50 hosts)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsagent-bench-sshd-") as tmp:
        keys = sshd.Keys.make(Path(tmp) / "keys")
        server = sshd.Sshd(keys, Path(tmp) / "sshd").start()
        try:
            server.wait()
            print(f"{'hosts':>5} {'case':>6} {'opsagent':>9} {'pyinfra':>8} {'ansible':>8} "
                  f"{'opsagent/pyinfra':>17} {'ansible/opsagent':>17}")
            for n in args.hosts:
                times = measure(n, args.reps, keys, server.port, not args.no_ansible)
                for case in ("first", "no-op"):
                    med = {t: statistics.median(v[case]) for t, v in times.items()}
                    ans = med.get("ansible")
                    print(f"{n:>5} {case:>6} {med['opsagent']:>9.2f} {med['pyinfra']:>8.2f} "
                          f"{ans if ans is not None else float('nan'):>8.2f} "
                          f"{med['opsagent'] / med['pyinfra']:>17.2f} "
                          f"{(ans / med['opsagent']) if ans else float('nan'):>17.2f}", flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
