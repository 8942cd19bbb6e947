"""Evidence: what a run found that changed nothing but must stay provable (a security
policy's checks, per host). Each document's sha256 is sealed into the hash-chained
audit log with its run; the documents are kept in one file per run under
STATE_DIR/evidence/, with the audit head they belong to, for an auditor to keep:
recompute a document's digest and find it in `opsagent audit` under that head."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.secrets import scrub

FOLDER = "evidence"


@dataclass(frozen=True)
class Proof:
    kind: str
    summary: str
    document: Any
    sha256: str


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def proof(kind: str, summary: str, document: Any) -> Proof:
    """The document as it is kept (every secret resolved in this process masked, as in
    the store) and the sha256 of that."""
    kept = json.loads(scrub(canonical(document).decode()))
    return Proof(kind, scrub(summary), kept, hashlib.sha256(canonical(kept)).hexdigest())


def line(p: Proof) -> str:
    """What the audit entry says about it."""
    return f"sha256:{p.sha256} {p.summary}".strip()


def keep(state_dir: Path, run_id: int, head: tuple[int, str],
         proofs: dict[tuple[str, str], Proof]) -> Path:
    """Write the run's evidence file (private, atomically); its path."""
    folder = state_dir / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"run-{run_id}.json"
    data = {"run": run_id, "audit_head": f"{head[0]}:{head[1]}", "evidence": [
        {"policy": policy, "host": host, "kind": p.kind, "sha256": p.sha256,
         "summary": p.summary, "document": p.document}
        for (policy, host), p in sorted(proofs.items())]}
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    os.replace(temporary, path)
    return path
