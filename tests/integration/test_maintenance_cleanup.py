"""The maintenance kind's disk cleanup on @local: old files and links go, young ones and
everything a symlink points to outside the folder stay; the bytes reclaimed are the
blocks freed; a folder given as a symlink is refused while the other parts still run;
the apt cache and the journal are read in check mode (this machine is never changed)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.project import snapshot

OLD = time.time() - 30 * 86400


def old(path: Path) -> Path:
    os.utime(path, (OLD, OLD), follow_symlinks=False)
    return path


def write(root: Path, cleanup: str) -> None:
    (root / "p.yml").write_text("apiVersion: opsagent/v1\nkind: maintenance\n"
                                "metadata: {name: cleanup}\ntargets: [all]\nspec:\n"
                                f"  cleanup: {cleanup}\n")


def run(root: Path, command: str = "apply") -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    done = subprocess.run([sys.executable, "-m", "agent", command, "p.yml", "-i", "@local",
                           "--json", "--diff", "--state-dir", str(root / "state")],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    op = next(o for o in json.loads(done.stdout)["hosts"][0]["ops"] if o["name"].startswith("disk cleanup"))
    parts = [json.loads(line[8:]) for line in op["stdout"].splitlines() if line.startswith("CLEANUP ")]
    return done.returncode, op, parts


def test_old_files_go_links_are_not_followed_and_a_second_apply_changes_nothing(tmp_path: Path) -> None:
    tmp = tmp_path / "var-tmp"
    outside = tmp_path / "outside"
    (tmp / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    gone = [tmp / "a" / "b" / "old.log", tmp / "old.bin"]
    gone[0].write_bytes(b"x" * 70000)
    gone[1].write_bytes(b"y" * 9000)
    for path in gone:
        old(path)
    (tmp / "young.txt").write_text("keep")
    (tmp / "a" / "young").write_text("keep")
    (outside / "precious").write_text("outside the folder")
    old(outside / "precious")
    old(outside)
    link_dir = tmp / "into-outside"
    link_dir.symlink_to(outside)
    old(link_dir)
    (tmp / "fresh-link").symlink_to(outside / "precious")
    shared = tmp / "hardlinked"
    shared.write_text("two names")
    os.link(shared, outside / "other-name")
    old(shared)
    (tmp / "empty-old").mkdir()
    old(tmp / "empty-old")
    blocks = sum(os.lstat(p).st_blocks * 512 for p in [*gone, link_dir])  # a long link has a block
    write(tmp_path, f'{{paths: [{{path: "{tmp}", older_than: 14d}}]}}')

    files = snapshot(tmp_path / "var-tmp")
    code, op, parts = run(tmp_path, "plan")
    assert code == 0 and op["status"] == "changed", op
    assert f"would remove 4 files older than 2w in {tmp}, {blocks} bytes" in op["diff"]
    assert snapshot(tmp_path / "var-tmp") == files

    code, op, parts = run(tmp_path)
    assert code == 0 and op["status"] == "changed", op
    assert parts == [{"part": "paths", "path": str(tmp), "files": 4, "bytes": blocks}]
    assert not any(p.exists() for p in gone) and not os.path.lexists(link_dir)
    assert not shared.exists() and (outside / "other-name").read_text() == "two names"
    assert (outside / "precious").read_text() == "outside the folder"  # never followed
    assert (tmp / "young.txt").exists() and (tmp / "a" / "young").exists()
    assert os.path.islink(tmp / "fresh-link") and not (tmp / "empty-old").exists()

    code, op, parts = run(tmp_path)
    assert code == 0 and op["status"] == "ok" and parts[0]["files"] == 0, op


def test_a_folder_given_as_a_symlink_is_refused_and_the_other_folders_are_still_cleaned(
        tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old")
    old(real / "old.txt")
    (tmp_path / "link").symlink_to(real)
    other = tmp_path / "other"
    other.mkdir()
    (other / "old.txt").write_text("old")
    old(other / "old.txt")
    write(tmp_path, f'{{paths: [{{path: "{tmp_path}/link", older_than: 1d}}, '
                    f'{{path: "{other}", older_than: 1d}}]}}')
    code, op, parts = run(tmp_path)
    assert code == 2 and op["status"] == "failed", op
    assert f"{tmp_path}/link is a symlink, not cleaned" in op["error"]
    assert (real / "old.txt").exists() and not (other / "old.txt").exists()
    assert [p.get("files") for p in parts] == [None, 1]


def test_the_apt_cache_and_the_journal_are_read_in_check_mode(tmp_path: Path) -> None:
    write(tmp_path, "{journal: {max_size: 500M}, apt_cache: true}")
    debs = glob.glob("/var/cache/apt/archives/*.deb")
    before = {p: os.stat(p).st_mtime for p in debs}
    code, op, parts = run(tmp_path, "plan")
    assert code == 0, op
    assert "would vacuum the journal to 500M" in op["diff"]
    apt = next(p for p in parts if p["part"] == "apt_cache")
    assert apt["files"] >= len(debs)
    assert {p: os.stat(p).st_mtime for p in debs} == before
