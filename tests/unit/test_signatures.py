"""The signature catalogue: the argument model of every operation built from the cache file
is the one built from pyinfra itself; the file is per pyinfra version and rebuilt when
broken; and once it is kept, validating a policy imports nothing of pyinfra."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from agent.engine import catalog, signatures

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OPSAGENT_CACHE_DIR", str(tmp_path))
    signatures.catalogue.cache_clear()
    catalog.arguments_model.cache_clear()
    yield tmp_path
    signatures.catalogue.cache_clear()
    catalog.arguments_model.cache_clear()


def schema(name: str) -> tuple[Any, Any]:
    model = catalog.arguments_model(name)
    return model.model_json_schema(), model.model_config.get("extra")


def test_every_operations_model_is_the_one_pyinfra_itself_gives(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = signatures.catalogue()
    names = [f"{m}.{o}" for m, ops in kept.items() for o in ops]
    live = [n for n in names if kept[n.split(".")[0]][n.split(".")[1]].get("live")]
    assert len(names) > 150 and len(live) <= len(names) // 10, live
    from_file = {n: schema(n) for n in names}
    catalog.arguments_model.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(signatures, "catalogue", lambda: {m: dict.fromkeys(ops, {"live": True})
                                                         for m, ops in kept.items()})
        for name in names:
            assert schema(name) == from_file[name], name
    catalog.arguments_model.cache_clear()
    assert catalog.parameter_names("files.line")[:2] == ["path", "line"]


def test_the_file_is_per_pyinfra_version_and_a_broken_one_is_built_again(cache_dir: Path) -> None:
    first = signatures.catalogue()
    path = cache_dir / f"pyinfra-{version('pyinfra')}-operations-{signatures.FORMAT}.json"
    assert json.loads(path.read_text())["modules"] == first
    wrong = {"format": signatures.FORMAT, "modules": {"files": {"line": {
        "any": False, "params": [{"name": "path", "type": "__import__('os').system('x')"}]}}}}
    for broken in ('{"format": 2, "modu', json.dumps(wrong)):
        path.write_text(broken)
        signatures.catalogue.cache_clear()
        assert signatures.catalogue() == first
        assert json.loads(path.read_text())["modules"] == first


def test_a_type_is_written_as_json_and_read_back() -> None:
    from typing import Literal

    for tp in (str, int | None, list[str] | str, dict[str, int], tuple[str, ...],
               Literal["present", "absent"], Any):
        written = signatures.write_type(tp)
        assert written is not None
        assert json.loads(json.dumps(written)) == written
        assert signatures.read_type(written) == tp, written
    with pytest.raises(ValueError, match="not a type of the catalogue"):
        signatures.read_type(["os.system", "str"])


def test_once_kept_validation_imports_nothing_of_pyinfra(cache_dir: Path) -> None:
    script = ("import sys; from agent.cli import validate; "
              "code = validate.main(['policies/', '-i', 'inventories/local.yml']); "
              "print(code, sorted(m for m in sys.modules if m.startswith('pyinfra')))")
    env = {"OPSAGENT_CACHE_DIR": str(cache_dir), "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # the first run builds the file
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env=env)
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr
    policy = cache_dir / "typo.yml"
    policy.write_text("apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: t}\n"
                      "targets: [all]\nspec:\n  tasks:\n    - files.lnie: {path: /x, line: y}\n")
    bad = subprocess.run([sys.executable, "-m", "agent", "validate", str(policy)], cwd=REPO,
                         text=True, capture_output=True, timeout=120, env=env)
    assert ("typo.yml:7:7: tasks 't' > spec.tasks[0].files.lnie: unknown operation "
            "'files.lnie'; did you mean 'files.line'?") in bad.stderr
