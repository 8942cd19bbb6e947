"""Results of earlier tasks (`register:`) and the conditions (`when:`) that read them.

A `when:` that names a registered result cannot be known when the policy is planned:
its step carries the expression and the variables it was planned with, and it is
evaluated here, on the controller, just before the step would run on its host, with the
results that host registered so far. A registered result is, as in Ansible, a mapping:
status, changed, failed, skipped, stdout, stderr, stdout_lines (and, for a loop,
results: one such mapping per item).
"""

from __future__ import annotations

from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Step
from agent.policy.render import Renderer

STAND_IN: dict[str, Any] = {  # what validation evaluates such a condition with
    "status": "ok", "changed": False, "failed": False, "skipped": False, "stdout": "",
    "stderr": "", "stdout_lines": [], "results": []}


class Registered:
    """One host's registered results, for the run of its steps."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.renderer = Renderer()

    def blocked(self, step: Step) -> tuple[str, str]:
        """(why it is skipped, why it failed): ("", "") when it runs."""
        if not step.when:
            return "", ""
        try:
            holds = self.renderer.condition(step.when, {**step.scope, **self.values})
        except ValueError as e:
            return "", f"when: {step.when}: {e}"
        return ("" if holds else f"when: {step.when} is false"), ""

    def add(self, step: Step, op: OpResult) -> None:
        if not step.register:
            return
        value = {"status": str(op.status), "changed": op.status in (Status.CHANGED, Status.RAN),
                 "failed": op.status is Status.FAILED, "skipped": op.status is Status.SKIPPED,
                 "stdout": op.stdout, "stderr": op.stderr,
                 "stdout_lines": op.stdout.splitlines()}
        if not step.looped:
            self.values[step.register] = value
            return
        results = [*self.values.get(step.register, {}).get("results", []), value]
        self.values[step.register] = {
            "status": "failed" if any(r["failed"] for r in results) else
                      "changed" if any(r["changed"] for r in results) else "ok",
            "changed": any(r["changed"] for r in results),
            "failed": any(r["failed"] for r in results),
            "skipped": all(r["skipped"] for r in results), "results": results}
