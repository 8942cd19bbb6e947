"""opsagent's git housekeeping vs the cron script people run, on N local repositories.

Run by hand (not in CI):  .venv/bin/python bench/maintenance.py [--repos 100] [--reps 3]

The repositories are of mixed sizes (a third each of 20, 200 and 2,000 commits, made
with git fast-import). Two cases, each from a fresh copy, interleaved:
(a) nothing is needed: every repository was housekept just before;
(b) everything is needed: per repository 60 packs, 150 loose refs, 800 loose objects
(the loose-object threshold is 500 for every tool: the policy's, and gc.auto in each
repository's config). Against: a cron script that runs `git maintenance run --auto` in each repository, and
one that runs `git gc --auto` in each. Printed: medians of wall time and of CPU time
(the children's user + system), CPU per wall second (about one core is the aim), and
the ratio script / opsagent.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
       "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b", "LC_ALL": "C"}
POLICY = """\
apiVersion: opsagent/v1
kind: maintenance
metadata: {{name: bench}}
targets: [all]
spec:
  git: {{repositories: ["{srv}/*.git"], thresholds: {{loose_objects: 500}}}}
"""


def git(repo: Path, *args: str, data: bytes | None = None) -> None:
    subprocess.run(["git", "--git-dir", str(repo), *args], input=data, env=ENV,
                   capture_output=True, check=True)


def stream(commits: int, start: int, mark: str) -> bytes:
    """A fast-import stream of `commits` commits on main, each changing one file."""
    out = []
    for i in range(start, start + commits):
        body = f"{mark} {i}\n" * 20
        parent = "from refs/heads/main^0\n" if i == start and start else ""
        out.append(f"commit refs/heads/main\ncommitter b <b@b> {1700000000 + i} +0000\n"
                   f"data {len(str(i)) + 1}\nc{i}\n{parent}"
                   f"M 644 inline f{i % 50}\ndata {len(body)}\n{body}\n")
    return "".join(out).encode()


def make(srv: Path, repos: int, untidy: bool) -> None:
    for n in range(repos):
        repo = srv / f"r{n:03}.git"
        subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=ENV)
        git(repo, "config", "gc.auto", "500")  # the policy's loose_objects threshold
        for detach in ("gc.autoDetach", "maintenance.autoDetach"):  # time all the work
            git(repo, "config", detach, "false")
        size = (20, 200, 2000)[n % 3]
        git(repo, "fast-import", "--quiet", data=stream(size, 0, "a"))
        if not untidy:
            continue
        for k in range(60):  # a pack per push, as a busy server has
            git(repo, "-c", "fastimport.unpackLimit=0", "fast-import", "--quiet",
                data=stream(2, size + 2 * k, f"p{k}"))
        git(repo, "update-ref", "--stdin",
            data="".join(f"create refs/tags/t{i} refs/heads/main\n" for i in range(150)).encode())
        blobs = "".join(f"loose {n} {i}\n" for i in range(800))
        folder = Path(tempfile.mkdtemp(dir=srv.parent))
        for i, line in enumerate(blobs.splitlines()):
            (folder / str(i)).write_text(line)
        git(repo, "hash-object", "-w", "--stdin-paths",
            data="\n".join(str(folder / str(i)) for i in range(800)).encode())
        shutil.rmtree(folder)


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def script(srv: Path, command: str) -> list[str]:
    return ["sh", "-c", f'for r in "{srv}"/*.git; do git --git-dir="$r" {command} >/dev/null 2>&1; done']


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-maintenance-"))
    try:
        pristine = {}
        for case, untidy in (("nothing needed", False), ("everything needed", True)):
            srv = work / f"pristine-{untidy}" / "srv"
            srv.mkdir(parents=True)
            made = time.perf_counter()
            make(srv, args.repos, untidy)
            print(f"made {args.repos} repositories ({case}) in {time.perf_counter() - made:.1f}s",
                  flush=True)
            pristine[case] = srv
        tools = {"opsagent": None, "git maintenance run --auto": "maintenance run --auto",
                 "git gc --auto": "gc --auto --quiet"}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for rep in range(args.reps):
            for case, source in pristine.items():
                for tool, command in tools.items():
                    root = work / "run"
                    shutil.rmtree(root, ignore_errors=True)
                    shutil.copytree(source.parent, root, symlinks=True)
                    srv = root / "srv"
                    (root / "p.yml").write_text(POLICY.format(srv=srv))
                    opsagent = [str(BIN / "opsagent"), "apply", "p.yml", "-i", "@local",
                                "--state-dir", str(root / "state")]
                    if case == "nothing needed":  # housekept just before, by the same tool
                        timed(opsagent if command is None else script(srv, command), root)
                    argv = opsagent if command is None else script(srv, command)
                    results.setdefault((case, tool), []).append(timed(argv, root))
            print(f"rep {rep + 1} done", flush=True)
        print(f"\n{args.repos} repositories, median of {args.reps}")
        print(f"{'case':18} {'tool':28} {'wall s':>8} {'cpu s':>8} {'cores':>6} {'÷ opsagent':>10}")
        for case in pristine:
            ours = statistics.median(w for w, _ in results[(case, "opsagent")])
            for tool in tools:
                wall = statistics.median(w for w, _ in results[(case, tool)])
                cpu = statistics.median(c for _, c in results[(case, tool)])
                print(f"{case:18} {tool:28} {wall:8.2f} {cpu:8.2f} {cpu / wall:6.2f} {wall / ours:10.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
