"""What people read: progress lines while hosts run, diffs, and the recap."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from typing import TextIO

from agent.cli.shown import shown
from agent.core.results import HostResult, OpResult, RunResult, Status

_COLOURS = {
    Status.OK: "32", Status.CHANGED: "33", Status.RAN: "36", Status.FAILED: "31",
    Status.SKIPPED: "90",
}
_PLANNED = {Status.CHANGED: "would change", Status.RAN: "would run", Status.OK: "ok"}


class Printer:
    def __init__(self, out: TextIO = sys.stdout, diff: bool = False) -> None:
        self.out = out
        self.diff = diff
        self.colour = out.isatty()

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def status(self, op: OpResult) -> str:
        word = _PLANNED.get(op.status, op.status.value) if op.planned else op.status.value
        return self.paint(word, _COLOURS[op.status])

    def progress(self, host: str, op: OpResult) -> None:
        try:
            self._progress(host, op)
        except BrokenPipeError:  # e.g. piped into `head`: stop printing, let the run finish
            self.out = open(os.devnull, "w")  # noqa: SIM115

    def _progress(self, host: str, op: OpResult) -> None:
        line = f"{shown(host)}  {op.kind} {op.policy!r} > {shown(op.name)}: {self.status(op)}"
        if op.duration >= 0.01:
            line += f" ({op.duration:.2f}s)"
        print(line, file=self.out, flush=True)
        if self.diff and op.diff:
            for diff_line in shown(op.diff).splitlines():
                print(f"    {diff_line}", file=self.out)
        if op.status is Status.SKIPPED and op.error:  # why: a false when:, a stopped rollout
            print(self.paint(f"    {shown(op.error)}", "90"), file=self.out)
        if op.status is Status.FAILED and op.error:
            for error_line in shown(op.error).splitlines():
                print(self.paint(f"    {error_line}", "31"), file=self.out)
        for warning_line in shown(op.warning).splitlines():
            print(self.paint(f"    warning: {warning_line}", "33"), file=self.out)

    def line(self, text: str) -> None:
        """A line about the run itself, e.g. a rollout's next wave."""
        try:
            print(self.paint(shown(text), "1"), file=self.out, flush=True)
        except BrokenPipeError:
            self.out = open(os.devnull, "w")  # noqa: SIM115

    def recap(self, result: RunResult) -> None:
        title = "PLAN RECAP" if result.check else "RECAP"
        print(f"\n{title} " + "-" * 60, file=self.out)
        width = max((len(shown(h.host)) for h in result.hosts), default=4) + 2
        for host in result.hosts:
            fields = [f"{key}={value}" for key, value in summary(host, result.check).items()]
            name = self.paint(shown(host.host).ljust(width), "31" if host.failed else "32")
            waves = "  ".join(f"wave {n} of {shown(p)!r}" for p, n in host.waves.items())
            print((name + "  ".join(f.ljust(15) for f in [*fields, waves])).rstrip(),
                  file=self.out)
            if host.error:
                prefix = "unreachable: " if host.unreachable else ""
                print(self.paint(f"  {prefix}{shown(host.error)}", "31"), file=self.out)
        print(f"\n{len(result.hosts)} hosts in {result.duration:.2f}s", file=self.out)


def summary(host: HostResult, check: bool) -> dict[str, int]:
    """The recap's counts for one host; in apply, what audit policies would change is drift."""
    counts = host.counts()
    keys: tuple[str, ...]
    if check:
        keys = ("ok", "would_change", "would_run", "failed", "skipped")
    else:
        counts["drift"] = counts["would_change"] + counts["would_run"]
        keys = ("ok", "changed", "ran", "failed", "skipped", "drift")
    return {**{key: counts[key] for key in keys}, "unreachable": int(host.unreachable)}


FORMAT = 1  # of to_json's output; README "apply --json" says what each version holds


def to_json(result: RunResult, audit_head: tuple[int, str] | None = None) -> str:
    data = {"format": FORMAT, **asdict(result)}
    data["failed"] = result.failed
    if audit_head is not None:  # the audit log's newest entry, once the run is recorded
        data["audit_head"] = f"{audit_head[0]}:{audit_head[1]}"
    for host, entry in zip(result.hosts, data["hosts"], strict=True):
        entry["counts"] = summary(host, result.check)
    return json.dumps(data, indent=2)


def exit_code(result: RunResult) -> int:
    return 2 if result.failed else 0
