"""The layers of agent/ (docs/kinds.md): each may import only what lies below it.

An AST walk over every module, imports inside functions included, so a lazy import
cannot hide a dependency that points upwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).parent.parent.parent / "agent"


def _module(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """agent.* and pyinfra modules each module imports, anywhere in its code."""
    found: dict[str, set[str]] = {}
    for path in sorted(AGENT.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names |= {f"{node.module}.{a.name}" for a in node.names}
        found[_module(path)] = {n for n in names if _under(n, "agent", "pyinfra")}
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# (who, what it must never import, why)
RULES = [
    (("agent.core", "agent.kinds", "agent.policy", "agent.state", "agent.plan", "agent.runs",
      "agent.waves", "agent.actions", "agent.deploys"), ("pyinfra",), "only the engine talks to pyinfra"),
    (("agent.core",), ("agent",), "the vocabulary at the bottom imports only itself"),
    (("agent.engine", "agent.state", "agent.inventory", "agent.policy.load",
      "agent.policy.model", "agent.policy.render", "agent.policy.sandbox",
      "agent.policy.messages"), ("agent.kinds",), "below the kinds: only policy.validate "
     "reaches them, through the registry"),
    (("agent.kinds",), ("agent.cli", "agent.daemon", "agent.runs", "agent.actions",
                        "agent.waves", "agent.playbook", "agent.state", "agent.metrics",
                        "agent.report", "agent.engine.run", "agent.deploys"),
     "a kind is data and functions: the run service runs and records it"),
    (("agent.core", "agent.engine", "agent.state", "agent.policy", "agent.inventory",
      "agent.kinds", "agent.plan", "agent.runs", "agent.waves", "agent.health",
      "agent.actions", "agent.deploys"), ("agent.cli", "agent.daemon", "agent.playbook", "agent.report",
                         "agent.metrics"), "lower layers never reach the commands"),
]


def broken(found: dict[str, set[str]]) -> list[str]:
    out = []
    for who, never, why in RULES:
        for module, names in found.items():
            if not _under(module, *who):
                continue
            for name in sorted(names):
                allowed = _under(name, "agent.core") and _under(module, "agent.core")
                if _under(name, *never) and not allowed and name != "agent":
                    out.append(f"{module} imports {name}: {why}")
    return out


def test_no_module_imports_upwards() -> None:
    assert broken(imports()) == []


def test_only_policy_validate_reaches_the_kinds_below_them() -> None:
    found = imports()
    below = [m for m, names in found.items()
             if _under(m, "agent.policy") and any(_under(n, "agent.kinds") for n in names)]
    assert below == ["agent.policy.validate"]


@pytest.mark.parametrize("module, name", [
    ("agent.core.steps", "agent.kinds.contract"),
    ("agent.engine.sequence", "agent.kinds"),
    ("agent.kinds.backup.actions", "agent.engine.run"),
    ("agent.kinds.tasks", "agent.cli.shown"),
    ("agent.state.store", "agent.daemon.logs"),
    ("agent.kinds.backup.plan", "pyinfra.operations.server"),
])
def test_the_walk_catches_an_import_upwards(module: str, name: str) -> None:
    found = imports()
    found[module] = found[module] | {name}
    assert any(line.startswith(f"{module} imports {name}") for line in broken(found))


def test_the_walk_sees_imports_inside_functions() -> None:
    # agent.runs imports the registry only inside observe()
    assert "agent.kinds" in imports()["agent.runs"]
