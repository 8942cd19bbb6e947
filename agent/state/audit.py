"""The audit log: one entry per change (or failed step), each sealed with the hash of the
one before.

hash = sha256(previous hash + canonical JSON of the entry). Editing an entry breaks its
own hash; deleting one breaks the next entry's link and leaves a gap in the sequence;
deleting the newest ones no longer matches the head row, which every append updates in
the same transaction. Whoever can rewrite the whole file can rewrite the whole chain, or
empty it: so the head (SEQ:HASH) is published outside the database after every run (the
run's output and log line, the opsagent_audit_head_sequence metric, the report, and
syslog when asked), and `audit verify --expect-head SEQ:HASH` checks the chain against a
head kept elsewhere: a chain rebuilt, emptied or cut short no longer holds it.
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


def parse_head(text: str) -> tuple[int, str]:
    """SEQ:HASH as `audit verify` and every run print it; raises ValueError."""
    seq, _, digest = text.partition(":")
    if not (seq.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise ValueError(f"{text!r} is not SEQ:HASH (a number, ':', 64 hex digits)")
    return int(seq), digest


def holds(db: sqlite3.Connection, expected: tuple[int, str]) -> str:
    """'' if the chain holds the expected head (it may have grown since); else why not."""
    seq, digest = expected
    if seq == 0:
        return "" if digest == GENESIS else "head 0 is always the genesis hash"
    row = db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        last = head(db)[0]
        return (f"entry {seq} of the expected head is not in the log (it ends at {last}): "
                "entries were deleted, or the log was replaced")
    if row[0] != digest:
        return (f"entry {seq} has hash {row[0]}, not the expected {digest}: the log was "
                "rewritten up to it")
    return ""


def head(db: sqlite3.Connection) -> tuple[int, str]:
    row = db.execute("SELECT seq, hash FROM audit_head WHERE one = 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(db: sqlite3.Connection, entry: Entry) -> tuple[int, str, str]:
    """Add an entry; call inside the write transaction that stores its run. Returns its
    sequence number, the hash before it and its own."""
    seq, prev = head(db)
    digest = seal(prev, entry)
    db.execute(f"INSERT INTO audit (seq, {', '.join(FIELDS)}, prev, hash)"
               f" VALUES (?, {', '.join('?' * len(FIELDS))}, ?, ?)",
               (seq + 1, *(getattr(entry, f) for f in FIELDS), prev, digest))
    db.execute("INSERT INTO audit_head (one, seq, hash) VALUES (1, ?, ?)"
               " ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
               (seq + 1, digest))
    return seq + 1, prev, digest


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
