"""gevent's patches, with the installed packages' entry points read once, not 25 times."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
from importlib import metadata
real, scans = metadata.entry_points, []
def counted(*args, **kwargs):
    scans.append(kwargs)
    return real(*args, **kwargs)
metadata.entry_points = counted
from agent import patching
patching.patch_all()
from gevent import monkey
print(len(scans), metadata.entry_points is counted,
      all(monkey.is_module_patched(m) for m in ("socket", "threading", "ssl", "subprocess")))
"""


def test_gevent_patches_everything_with_one_read_of_entry_points() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split() == ["1", "True", "True"]
