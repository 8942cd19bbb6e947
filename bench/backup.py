"""opsagent's backup kind vs borgmatic on the same ~1 GB of mixed files, in the same run.

Run by hand (not in CI):  .venv/bin/python bench/backup.py [--size-mb 1000] [--work DIR]

Data: a third compressible text (log-like lines), a third already-compressed bytes
(random), a third duplicates of the other two. Each tool gets its own local repository
(repokey-blake2, lz4) and does the same work: make the repository, a first backup,
prune (keep_daily 7) and compact; then an incremental after 1% of the files changed;
then a full restore into an empty folder. Printed: wall times, the ratio
borgmatic/opsagent, and each repository's size. borgmatic is installed into
WORK/borgmatic-venv with pip on first use.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASS = "bench passphrase"

POLICY = """\
apiVersion: opsagent/v1
kind: backup
metadata: {{name: bench}}
targets: ["@local"]
spec:
  repository: {repo}
  passphrase: {{file: {passfile}}}
  sources: [{data}]
  compression: lz4
  retention: {{keep_daily: 7}}
  checks: []
"""

BORGMATIC = """\
source_directories: [{data}]
repositories: [{{path: {repo}, label: bench}}]
encryption_passcommand: cat {passfile}
compression: lz4
keep_daily: 7
"""


def make_data(data: Path, size_mb: int) -> None:
    third = size_mb * 1024 * 1024 // 3
    (data / "text").mkdir(parents=True)
    (data / "packed").mkdir()
    (data / "copies").mkdir()
    line = b"2026-11-22T10:00:00 INFO request served path=/api/v1/items status=200 ms=12\n"
    per_file = 4 * 1024 * 1024
    for i in range(third // per_file):
        (data / "text" / f"log{i:04}.txt").write_bytes(line * (per_file // len(line)) + b"%d\n" % i)
        (data / "packed" / f"blob{i:04}.bin").write_bytes(os.urandom(per_file))
    for i, source in enumerate(sorted((data / "text").iterdir())[::2] +
                               sorted((data / "packed").iterdir())[::2]):
        shutil.copy(source, data / "copies" / f"{i:04}-{source.name}")


def change_one_percent(data: Path) -> None:
    files = sorted(p for p in data.rglob("*") if p.is_file())
    for path in files[:: 100]:
        with path.open("ab") as out:
            out.write(os.urandom(4096))


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - started


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def borgmatic_bin(work: Path) -> Path:
    venv = work / "borgmatic-venv"
    if not (venv / "bin" / "borgmatic").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "borgmatic"], check=True)
    return venv / "bin" / "borgmatic"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/opsagent-bench-backup"))
    args = parser.parse_args()
    work: Path = args.work
    borgmatic = borgmatic_bin(work)
    for name in ("data", "oa", "bm"):
        shutil.rmtree(work / name, ignore_errors=True)
    data = work / "data"
    make_data(data, args.size_mb)
    passfile = work / "pass"
    passfile.write_text(PASS + "\n")
    print(f"data: {du(data) / 1e6:.0f} MB in {sum(1 for _ in data.rglob('*'))} entries")

    oa = work / "oa"
    (oa / "policies").mkdir(parents=True)
    (oa / "policies" / "bench.yml").write_text(POLICY.format(repo=oa / "repo", passfile=passfile,
                                                             data=data))
    opsagent = [str(BIN / "opsagent"), "apply", "policies", "-i", "@local", "--state-dir",
                str(oa / "state")]
    bm = work / "bm"
    bm.mkdir()
    (bm / "config.yaml").write_text(BORGMATIC.format(repo=bm / "repo", passfile=passfile,
                                                     data=data))
    env = {**os.environ, "BORG_BASE_DIR": str(bm / "home")}
    cfg = ["-c", str(bm / "config.yaml")]
    # the same work for both: make the repository, back up, prune, compact
    rows = []
    init_bm = timed([str(borgmatic), *cfg, "repo-create", "--encryption", "repokey-blake2"], bm, env)
    first_oa = timed(opsagent, oa)
    first_bm = timed([str(borgmatic), *cfg, "create", "prune", "compact"], bm, env) + init_bm
    rows.append(("first backup (init, create, prune, compact)", first_oa, first_bm))
    change_one_percent(data)
    time.sleep(1)
    second_oa = timed(opsagent, oa)
    second_bm = timed([str(borgmatic), *cfg, "create", "prune", "compact"], bm, env)
    rows.append(("incremental after a 1% change", second_oa, second_bm))
    restore_oa = timed([str(BIN / "opsagent"), "backup", "restore", "bench", "policies", "-i",
                        "@local", "--state-dir", str(oa / "state"), "--to",
                        str(oa / "restored")], oa)
    (bm / "restored").mkdir()  # borgmatic extracts into an existing folder
    restore_bm = timed([str(borgmatic), *cfg, "extract", "--archive", "latest",
                        "--destination", str(bm / "restored")], bm, env)
    rows.append(("full restore", restore_oa, restore_bm))

    print(f"\n{'':46}{'opsagent':>10}{'borgmatic':>11}{'bm/oa':>8}")
    for what, a, b in rows:
        print(f"{what:46}{a:9.1f}s{b:10.1f}s{b / a:8.2f}")
    print(f"{'repository size':46}{du(oa / 'repo') / 1e6:8.0f}MB{du(bm / 'repo') / 1e6:9.0f}MB")
    same = subprocess.run(["diff", "-rq", str(data), str(oa / "restored" / str(data).lstrip("/"))],
                          capture_output=True, text=True, check=False)
    print(f"opsagent's restore equals the data: {'yes' if same.returncode == 0 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
