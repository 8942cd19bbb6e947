"""Every registered kind keeps the whole contract (docs/kinds.md): explained fields with
examples, metric families promtool accepts, actions that explain themselves, and a
bad-input corpus of its own. A new kind that misses one fails here."""

from __future__ import annotations

import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from pydantic import BaseModel

from agent.cli import main
from agent.kinds import KINDS
from agent.kinds.contract import Kind

CORPUS = Path(__file__).parent.parent / "cases" / "invalid"

# facts as each kind's observe() keeps them, for its metric families
FACTS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "backup": [("home", "web1", {
        "repository": "/srv/borg", "success": 1, "duration": 2.5, "at": 1.7e9, "error": "",
        "interval": 86400, "archive": {"name": "web1-x", "original": 10, "compressed": 5,
                                       "deduplicated": 1, "files": 3, "at": 1.7e9},
        "repository_size": 100, "archives": 2, "last_success": 1.7e9,
        "checks": {"repository": {"ok": 1, "at": 1.7e9, "error": ""},
                   "extract": {"ok": 0, "at": 1.7e9, "error": "boom"}}})],
    "sync": [("repos", "mirror", {"repositories": {
        "api": {"ok": 1, "degraded": 0, "branches": {"in sync": 3, "fast-forward": 1},
                "pushed": 2, "lost": 0, "at": 1.7e9, "last_success": 1.7e9, "seconds": 0.4,
                "interval": 300, "outcomes": {"fast-forward": 4, "merged": 2, "conflict": 1},
                "conflicts": {"main": {"state": "conflict", "since": 1.7e9, "files": ["a.txt"],
                                       "heads": {"public": "a" * 40, "internal": "b" * 40}}}},
        "web": {"ok": 0, "degraded": 1, "branches": {"diverged": 1}, "pushed": 0, "lost": 0,
                "at": 1.7e9}}})],
    "security": [("baseline", "web1", {
        "controls": [{"id": "ssh-no-root-login", "result": "fail", "severity": "high"},
                     {"id": "tmp-noexec", "result": "waived", "severity": "medium",
                      "waiver": {"expires": "2027-03-01", "owner": "ops@example.org",
                                 "reason": "compilers run from /tmp"}}],
        "counts": {"pass": 0, "fail": 1, "waived": 1, "na": 0, "error": 0}, "score": 0.0,
        "at": 1.7e9})],
    "maintenance": [("git-housekeeping", "git1", {
        "repositories": {"healthy": 3, "needs-maintenance": 0, "locked": 1, "fsck-failing": 1,
                         "error": 0},
        "problems": [{"path": "/srv/git/a.git", "state": "locked", "why": "gc.pid"}],
        "at": 1700000000.0, "cleared_locks": 2,
        "tasks": {"repack": {"at": 1700000000.0, "ok": 1, "repositories": 2}},
        "cleanup": {"bytes": {"journal": 0, "apt_cache": 4096, "paths": 81920}, "pending": 0,
                    "at": 1700000000.0},
        "packages": {"pending_security": 1, "pending_all": 4, "upgraded": ["openssl"],
                     "restarted": ["nginx.service"], "services_pending": 0, "reboot_required": 1,
                     "at": 1700000000.0}})],
    "tasks": [("files", "web1", {})],
    "deploy": [("shop-api", "web1", {"current": "1.4.2", "verified": "1.4.1", "switched": 1.7e9,
                                     "releases": ["1.4.1", "1.4.2"], "failed": []})],
}


def models(model: type[BaseModel], seen: frozenset[type] = frozenset()) -> list[type[BaseModel]]:
    """The model and every model its fields hold, each once."""
    found = [model]
    for info in model.model_fields.values():
        for sub in _inner(info.annotation):
            if sub not in seen | {model}:
                found += models(sub, seen | {model})
    return list(dict.fromkeys(found))


def _inner(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _inner(arg)]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_field_is_explained_with_an_example(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    kind = KINDS[name]
    assert main(["explain", name]) == 0
    out = capsys.readouterr().out
    fields = [(m.__name__, f, info) for m in models(kind.Spec)
              for f, info in m.model_fields.items()]
    fields += [(a.Args.__name__, f, info) for a in kind.actions.values()
               for f, info in a.Args.model_fields.items()]
    missing = [f"{m}.{f}" for m, f, info in fields
               if f != "operation" and not (info.description and info.examples)]
    assert missing == []
    for _, field, info in fields:
        assert f"{info.alias or field}: " in out
    assert out.count("e.g. ") >= len(fields) - 1  # a task's operation is its key
    for verb in kind.actions:
        assert f"action {name} {verb}: " in out


class _Families(Collector):
    def __init__(self, kind: Kind[Any]) -> None:
        self.kind = kind

    def collect(self) -> Any:
        return self.kind.families(FACTS[self.kind.name])


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) not installed")
@pytest.mark.parametrize("name", sorted(KINDS))
def test_metric_families_pass_promtool(name: str) -> None:
    assert name in FACTS, f"add the facts {name}'s observe() keeps to FACTS"
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(KINDS[name]))
    text = generate_latest(registry)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for line in text.decode().splitlines():
        if line.startswith("# TYPE "):
            assert line.split()[2].startswith(f"opsagent_{name}_")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_has_a_bad_input_corpus(name: str) -> None:
    cases = sorted((CORPUS / name).glob("*.yml"))
    assert cases, f"add bad {name} policies and their .expected errors under {CORPUS / name}"
    for case in cases:
        assert f"kind: {name}" in case.read_text()
        assert case.with_suffix(".expected").is_file()


def test_a_kind_is_found_by_its_own_name() -> None:
    assert all(kind.name == name for name, kind in KINDS.items())
