"""Audit entries sent off the host as they are written: one syslog message each, to a
local socket (/dev/log: journald or rsyslog, which forward them as configured).

A message carries the entry's sequence number, its hash and the one before, and the
entry itself with its diff given only by a hash: enough to check the chain later with
`audit verify --expect-head SEQ:HASH` against any shipped entry, and no diff text (which
may be long, or sensitive) on the wire. Shipping never fails a run: a socket that is not
there is said on stderr once.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from dataclasses import asdict

from agent.state.audit import Entry

IDENT = "opsagent-audit"
PRIORITY = 10 * 8 + 6  # facility authpriv, severity info: kept from unprivileged readers


class Syslog:
    def __init__(self, address: str) -> None:
        self.address = address

    def send(self, sealed: list[tuple[int, str, str, Entry]]) -> None:
        """sealed: (seq, prev, hash, entry) of each entry just committed."""
        if not sealed:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                for seq, prev, digest, entry in sealed:
                    sock.send(f"<{PRIORITY}>{IDENT}: {message(seq, prev, digest, entry)}".encode())
        except OSError as e:
            print(f"opsagent: audit entries not sent to syslog at {self.address}: "
                  f"{e.strerror or e}", file=sys.stderr)


def message(seq: int, prev: str, digest: str, entry: Entry) -> str:
    data = {k: v for k, v in asdict(entry).items() if k != "diff"}
    data["diff_sha256"] = hashlib.sha256(entry.diff.encode()).hexdigest()
    return json.dumps({"seq": seq, "hash": digest, "prev": prev, "entry": data},
                      sort_keys=True, separators=(",", ":"))
