"""A Report as JSON, as JUnit XML (a test suite per policy, a test case per host; and per
security policy and host, a test case per control), or as a self-contained HTML page (no
scripts, no external files)."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from importlib.resources import files

from jinja2 import Environment, select_autoescape

from agent.report.data import Report
from agent.report.timing import NOTICEABLE, SLOWER


def to_json(report: Report) -> str:
    data = asdict(report)
    data["summary"] = {"cells": len(report.cells), "compliant": report.compliant,
                       "changes": len(report.changes), "failures": len(report.failures),
                       "findings": len(report.findings), "deploys": len(report.deploys),
                       "controls_failing": sum(bool(c.failing) for c in report.compliance.controls),
                       "runs": report.runs, "failed_runs": report.failed_runs,
                       "slower": sum(t.slower for t in report.time.policies) if report.time else 0}
    if report.time:  # the derived figures, beside the stored ones
        for key, rows in (("policies", report.time.policies), ("operations", report.time.operations)):
            for row, timing in zip(data["time"][key], rows, strict=True):
                row.update(change=timing.change, slower=timing.slower)
        data["time"]["previous_partial"] = report.time.previous_partial
    return json.dumps(data, indent=2)


def to_junit(report: Report) -> str:
    suites = ET.Element("testsuites", name="opsagent compliance",
                        tests=str(len(report.cells)),
                        failures=str(sum(not c.compliant for c in report.cells)))
    for policy in report.policies:
        cells = [c for c in report.cells if c.policy == policy]
        suite = ET.SubElement(suites, "testsuite", name=policy, tests=str(len(cells)),
                              failures=str(sum(not c.compliant for c in cells)),
                              timestamp=_iso(max(c.finished for c in cells)))
        for cell in cells:
            case = ET.SubElement(suite, "testcase", classname=policy, name=cell.host)
            if not cell.compliant:
                message = (cell.error or f"{cell.drift} operation(s) not as wanted"
                           if cell.result == "success" else cell.error or cell.result)
                failure = ET.SubElement(case, "failure", message=message, type=cell.result)
                failure.text = message
    for host in report.compliance.hosts:  # a suite per security policy and host
        failing = [r for r in host.results if r["result"] in ("fail", "error")]
        suite = ET.SubElement(suites, "testsuite", name=f"{host.policy} {host.host}",
                              tests=str(len(host.results)), failures=str(len(failing)),
                              skipped=str(sum(r["result"] in ("na", "waived")
                                              for r in host.results)),
                              timestamp=_iso(host.checked))
        for r in host.results:
            case = ET.SubElement(suite, "testcase", classname=f"{host.policy}.{host.host}",
                                 name=r["id"])
            if r["result"] in ("fail", "error"):
                failure = ET.SubElement(case, "failure", message=r["detail"] or r["result"],
                                        type=f"{r['result']} ({r['severity']})")
                failure.text = r["detail"]
            elif r["result"] in ("na", "waived"):
                ET.SubElement(case, "skipped", message=r["detail"] or "not applicable")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def to_html(report: Report) -> str:
    env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
    env.filters["seconds"] = _seconds
    template = env.from_string(files("agent.report").joinpath("report.html.j2").read_text())
    return template.render(r=report, slower_ratio=SLOWER, noticeable=NOTICEABLE)


def _seconds(value: float) -> str:
    """3.2 ms, 0.41 s, 12.3 s, 2 h 03 min: readable at a glance, to two or three digits."""
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    minutes = int(value // 60)
    return f"{minutes} min {int(value % 60):02d} s" if minutes < 60 else \
        f"{minutes // 60} h {minutes % 60:02d} min"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
