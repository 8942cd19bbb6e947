"""A real Prometheus (Debian's `prometheus`) on loopback scraping given targets, with
the shipped rule files (RULES) if asked, for tests that query what it scraped."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.daemon import free_port

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = (CONTRIB / "prometheus" / "opsagent-rules.yml", CONTRIB / "prometheus" / "opsagent-trends.yml")


def available() -> bool:
    return shutil.which("prometheus") is not None


def panel(title: str) -> str:
    """The query of one panel of the shipped Grafana dashboard, over every instance."""
    data = json.loads((CONTRIB / "grafana" / "opsagent-dashboard.json").read_text())
    (expr,) = [t["expr"] for p in data["panels"] if p["title"] == title for t in p["targets"]]
    return str(expr).replace("$instance", ".*")


class Prometheus:
    def __init__(self, folder: Path, targets: list[str], job: str = "app",
                 rules: Sequence[Path] = (), interval: str = "1s") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        for rule in rules:
            shutil.copy(rule, folder / rule.name)
        (folder / "prometheus.yml").write_text(
            f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
            f"rule_files: {json.dumps([r.name for r in rules])}\n"
            f"scrape_configs:\n  - job_name: {job}\n"
            f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n")
        self.log = (folder / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        """The JSON answer of /api/v1/PATH; None while the server is not up."""
        url = f"{self.address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:  # a query Prometheus refuses: its JSON says why
            try:
                return json.loads(e.read())
            except ValueError:  # 503 in plain text while it starts
                return None
        except OSError:
            return None

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("query", query=expr)
        assert answer is None or answer["status"] == "success", answer
        return answer["data"]["result"] if answer else []

    def wait_for(self, expr: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.query(expr):
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never answered {expr!r}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
