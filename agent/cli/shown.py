"""Text from policies and hosts made safe to print on a terminal.

A task name or a host's error may hold control characters: ANSI escapes that recolour,
move the cursor or retitle the window, or bidirectional overrides (U+202E) that show a
line other than it is. They are printed as visible escapes (\\x1b, \\u202e); newlines and
tabs stay. Every secret resolved in this process is masked too.
"""

from __future__ import annotations

import re

from agent.core.secrets import scrub

# C0 controls but tab and newline, DEL, C1 controls; bidi embeddings, overrides, isolates
# and marks; the line and paragraph separators
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    return _UNSAFE.sub(_escape, scrub(text))
