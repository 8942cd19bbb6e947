"""The warm server's own checks: code changed on disk since it started, and a caller that
is one of its own commands."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from agent.warm.server import changed, descends


def test_a_changed_or_removed_file_is_seen(tmp_path: Path) -> None:
    kept, edited, removed = (tmp_path / n for n in ("kept.py", "edited.py", "removed.py"))
    for path in (kept, edited, removed):
        path.write_text("x = 1\n")
    files = {str(p): p.stat().st_mtime for p in (kept, edited, removed)}
    assert not changed(files)
    later = time.time() + 5
    os.utime(edited, (later, later))
    assert changed({str(kept): files[str(kept)], str(edited): files[str(edited)]})
    removed.unlink()
    assert changed({str(kept): files[str(kept)], str(removed): files[str(removed)]})


def test_a_command_of_the_server_is_its_descendant() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], text=True,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        assert descends(child.pid) and descends(grandchild)
        assert not descends(os.getpid()) and not descends(os.getppid()) and not descends(1)
    finally:
        child.kill()
        child.wait()
        os.kill(grandchild, 9)
