"""The shipped profiles: sets of controls, one YAML file each (NAME.yml, a mapping with
title, description and controls), validated like a policy's controls; a policy lists
them in `profiles:` and adds, changes or skips controls."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from agent.errors import Problems
from agent.policy.load import load_one
from agent.policy.messages import problem

if TYPE_CHECKING:
    from agent.kinds.security.spec import Control

FOLDER = Path(__file__).parent
NAMES = tuple(sorted(p.stem for p in FOLDER.glob("*.yml")))


@cache
def profile(name: str) -> tuple[Control, ...]:
    """The profile's controls, in order. Problems (file:line:col in the profile) when it
    is not valid: a test keeps the shipped ones valid."""
    from agent.kinds.security.spec import Profile

    path = FOLDER / f"{name}.yml"
    doc = load_one(path, f"profile {name}")
    try:
        return tuple(Profile.model_validate(doc.data).controls)
    except ValidationError as e:
        raise Problems(problem(doc, err, f"profile {name}", Profile) for err in e.errors()) from None
