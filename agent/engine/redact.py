"""What leaves the engine holds no secret: values resolved in this process are masked in
every result, and a sensitive step's diff and output give way to a note and a hash.

The hash (of the hidden diff) tells two runs' changes apart, or equal, without showing
either, as Puppet reports a Sensitive file's content only by its checksum.
"""

from __future__ import annotations

import hashlib

from agent.core.results import HostResult, OpResult
from agent.core.secrets import scrub

HIDDEN = "(sensitive: diff hidden; sha256 {digest})"


def redact(op: OpResult, sensitive: bool = False) -> OpResult:
    if sensitive:
        if op.diff:
            op.diff = HIDDEN.format(digest=hashlib.sha256(op.diff.encode()).hexdigest()[:16])
        op.stdout = op.stderr = ""
    op.name, op.diff, op.error, op.warning = (scrub(op.name), scrub(op.diff), scrub(op.error),
                                             scrub(op.warning))
    op.stdout, op.stderr = scrub(op.stdout), scrub(op.stderr)
    return op


def redact_host(result: HostResult) -> None:
    result.error = scrub(result.error)
