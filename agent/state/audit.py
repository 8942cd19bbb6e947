"""The audit log: one entry per change, each sealed with the hash of the one before.

hash = sha256(previous hash + canonical JSON of the entry). Editing an entry breaks its
own hash; deleting one breaks the next entry's link and leaves a gap in the sequence;
deleting the newest ones no longer matches the head row, which every append updates in
the same transaction. (Whoever can rewrite the whole file can rewrite the whole chain:
`opsagent audit verify` prints the head hash, to be kept somewhere else.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass

GENESIS = "0" * 64
FIELDS = ("at", "run_id", "who", "host", "policy", "step", "operation", "status", "diff")


@dataclass(frozen=True)
class Entry:
    at: float
    run_id: int
    who: str
    host: str
    policy: str
    step: str
    operation: str
    status: str
    diff: str


def seal(prev: str, entry: Entry) -> str:
    canonical = json.dumps(asdict(entry), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


def head(db: sqlite3.Connection) -> tuple[int, str]:
    row = db.execute("SELECT seq, hash FROM audit_head WHERE one = 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(db: sqlite3.Connection, entry: Entry) -> str:
    """Add an entry; call inside the write transaction that stores its run."""
    seq, prev = head(db)
    digest = seal(prev, entry)
    db.execute(f"INSERT INTO audit (seq, {', '.join(FIELDS)}, prev, hash)"
               f" VALUES (?, {', '.join('?' * len(FIELDS))}, ?, ?)",
               (seq + 1, *(getattr(entry, f) for f in FIELDS), prev, digest))
    db.execute("INSERT INTO audit_head (one, seq, hash) VALUES (1, ?, ?)"
               " ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
               (seq + 1, digest))
    return digest


def verify(db: sqlite3.Connection) -> tuple[int, list[str]]:
    """Walk the chain; return how many entries were checked and every problem found."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    count = 0
    for row in db.execute(f"SELECT seq, {', '.join(FIELDS)}, prev, hash FROM audit ORDER BY seq"):
        seq, values, stored_prev, stored_hash = row[0], row[1:-2], row[-2], row[-1]
        count += 1
        if seq != expected_seq:
            problems.append(f"entries {expected_seq}-{seq - 1} are missing")
        if stored_prev != prev:
            problems.append(f"entry {seq} does not follow the entry before it (deleted or replaced)")
        if seal(stored_prev, Entry(*values)) != stored_hash:
            problems.append(f"entry {seq} was changed after it was written")
        expected_seq, prev = seq + 1, stored_hash
    head_seq, head_hash = head(db)
    if (head_seq, head_hash) != (expected_seq - 1, prev):
        problems.append(f"the log ends at entry {expected_seq - 1} but its head says {head_seq}:"
                        " the newest entries were deleted")
    return count, problems
