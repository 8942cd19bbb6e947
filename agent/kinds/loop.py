"""Loops over a task: `loop:` a list, or "{{ EXPR }}" giving one; one task per item.

    - name: users
      server.user: {user: "{{ item.name }}", shell: "{{ item.shell }}"}
      loop: "{{ users }}"
      loop_control: {loop_var: item, label: "{{ item.name }}"}

Each item is rendered and validated as its own task, with the loop variable beside the
host's variables, so it is its own step: its own result line, diff and `when:` (as in
Ansible, `when:` sees the item). An error says which items it is wrong for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent.policy.messages import KEY_ERRORS, describe, invalid
from agent.policy.render import LOOP, Renderer

MAX_ITEMS = 10_000
CONTROL = "loop_control"
T = TypeVar("T")


class LoopControl(BaseModel):
    """How a loop names its items."""

    model_config = ConfigDict(extra="forbid")

    loop_var: str = Field("item", examples=["user"],
                          description="The name each item has in the task's strings and "
                          "its when:.")
    label: str | None = Field(None, examples=["{{ user.name }}"], description="What the "
                              "recap shows for each item; default: the item itself when it is "
                              "a string or number, its `name` when it is a mapping with one, "
                              "else its number.")

    @field_validator("loop_var")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"expected a variable name (letters, digits and _, not starting "
                             f"with a digit), got {value!r}")
        return value


def expand(data: dict[str, Any], variables: dict[str, Any], context: dict[str, Any],
           validate: Callable[[dict[str, Any], dict[str, Any]], T]) -> list[tuple[str, T]]:
    """(label, task) for every item of data's loop, rendered with variables and the item;
    raises ValidationError at the task's fields, saying for which items.

    validate(rendered task, validation context) checks one item's task."""
    renderer: Renderer = context.get("renderer") or Renderer()
    control = _control(data.get(CONTROL))
    items = _items(data[LOOP], renderer, variables)
    rest = {k: v for k, v in data.items() if k not in (LOOP, CONTROL)}
    done: list[tuple[str, T]] = []
    wrong: dict[tuple[Any, ...], list[str]] = {}  # (loc, type, message, input) -> labels
    for number, item in enumerate(items, 1):
        scope = {**variables, control.loop_var: item}
        label = _label(item, number, control, renderer, scope)
        failed: list[tuple[tuple[str | int, ...], str]] = []
        rendered = renderer.render_at(rest, scope, (), failed)
        for loc, message in failed:
            wrong.setdefault((loc, "loop_item", message, None), []).append(label)
        if failed:
            continue
        try:
            done.append((label, validate(rendered, {**context, "variables": scope})))
        except ValidationError as e:
            for err in e.errors():
                kind = "unknown_argument" if err["type"] in KEY_ERRORS else "loop_item"
                key = (err["loc"], kind, describe(err), _hashable(err["input"]))
                wrong.setdefault(key, []).append(label)
    if wrong:
        raise ValidationError.from_exception_data("loop", [_error(key, labels, len(items))
                                                           for key, labels in wrong.items()])
    return done


def _control(raw: Any) -> LoopControl:
    try:
        return LoopControl.model_validate(raw or {})
    except ValidationError as e:
        errors: list[InitErrorDetails] = [
            {"type": PydanticCustomError("loop_item", describe(err, LoopControl)),
             "loc": (CONTROL, *err["loc"]), "input": err["input"]} for err in e.errors()]
        raise ValidationError.from_exception_data("loop", errors) from None


def _items(raw: Any, renderer: Renderer, variables: dict[str, Any]) -> list[Any]:
    if isinstance(raw, str):
        try:
            value = renderer.value_of(raw, variables)
        except ValueError as e:
            raise _fail(str(e), raw) from None
    elif isinstance(raw, list):
        failed: list[tuple[tuple[str | int, ...], str]] = []
        value = renderer.render_at(raw, variables, (), failed)
        if failed:
            raise _fail(failed[0][1], raw)
    else:
        value = raw
    if not isinstance(value, list):
        raise _fail("expected a list, or \"{{ EXPRESSION }}\" giving one; got "
                    f"{type(value).__name__}", raw)
    if len(value) > MAX_ITEMS:
        raise _fail(f"a loop of {len(value)} items; at most {MAX_ITEMS} (split the task)", raw)
    return value


def _label(item: Any, number: int, control: LoopControl, renderer: Renderer,
           scope: dict[str, Any]) -> str:
    if control.label is not None:
        try:
            return str(renderer.value_of(control.label, scope))
        except ValueError as e:
            raise invalid((CONTROL, "label"), "loop_item", str(e), control.label) from None
    if isinstance(item, dict) and isinstance(item.get("name"), str | int):
        return str(item["name"])
    if isinstance(item, str | int | float) and not isinstance(item, bool):
        return str(item)
    return f"item {number}"


def _error(key: tuple[Any, ...], labels: list[str], total: int) -> InitErrorDetails:
    loc, kind, message, value = key
    which = "every item" if len(labels) == total > 1 else \
        f"item{'s' if len(labels) > 1 else ''} {', '.join(labels[:5])}" + \
        (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
    return {"type": PydanticCustomError(kind, f"{message} (loop: {which})"), "loc": loc,
            "input": value}


def failures(failed: list[tuple[tuple[str | int, ...], str]], value: Any) -> ValidationError:
    """A ValidationError for strings that did not render, at their places."""
    return ValidationError.from_exception_data("task", [{
        "type": PydanticCustomError("template", message), "loc": loc, "input": value}
        for loc, message in failed])


def _fail(message: str, value: Any) -> ValidationError:
    return invalid((LOOP,), "loop_item", message, value)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)
