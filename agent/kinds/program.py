"""Host programs made of modules: a kind's logic that runs on the host (standard library
only) is written as modules beside the kind, so mypy, ruff and the unit tests see them,
and joined here into the one text that is sent to the host. What such a program tells
its kind comes back as `PREFIX {json}` lines in its output (lines())."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def join(folder: Path, parts: tuple[str, ...], own: str) -> str:
    """The parts (file names in folder) in order, without their imports of each other
    (lines starting with `own`, e.g. "from agent.kinds.sync.", with their parenthesised
    continuation) and with the first part's __future__ import only."""
    lines: list[str] = []
    for i, part in enumerate(parts):
        skipping = False
        for line in (folder / part).read_text(encoding="utf-8").splitlines():
            if line.startswith(own) or (i and line.startswith("from __future__ ")):
                skipping = line.endswith("(")
            elif skipping:
                skipping = not line.startswith(")")
            else:
                lines.append(line)
    return "\n".join(lines) + "\n"


def lines(stdout: str, prefix: str) -> list[dict[str, Any]]:
    """The JSON objects of the output's lines that start with prefix ("SUMMARY "), in
    order; a line that is not one (cut, or not JSON) is left out."""
    found = []
    for line in stdout.splitlines():
        if line.startswith(prefix):
            try:
                data = json.loads(line[len(prefix):])
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append(data)
    return found
