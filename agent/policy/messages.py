"""Pydantic errors in words a person can act on: what was expected, and what was found."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from agent.errors import Problem, Problems, dotted
from agent.policy.load import Document, load_one

_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "none_required": "nothing (null)",
}


KEY_ERRORS = ("extra_forbidden", "unknown_argument", "unknown_operation")


def problem(
    doc: Document, err: ErrorDetails, context: str, model: type[BaseModel] | None,
    prefix: tuple[str | int, ...] = (),
) -> Problem:
    """A pydantic error as a Problem at the position of the value (or key) it is about."""
    loc = (*prefix, *err["loc"])
    return doc.problem(loc, context, dotted(loc), describe(err, model),
                       at_key=err["type"] in KEY_ERRORS)


def found(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(err: ErrorDetails, model: type[BaseModel] | None = None) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        return f"unknown field {name!r}" + suggest(name, _fields_at(model, err["loc"][:-1]))
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {found(err['input'])}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', '')}, got {found(err['input'])}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "string_too_short":
        return "expected some text, got an empty string"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "greater_than_equal":
        return f"expected a value >= {ctx.get('ge')}, got {found(err['input'])}"
    if kind == "less_than_equal":
        return f"expected a value <= {ctx.get('le')}, got {found(err['input'])}"
    if kind == "greater_than":
        return f"expected a value > {ctx.get('gt')}, got {found(err['input'])}"
    if err["msg"].startswith("Input should"):
        return f"expected {err['msg'][len('Input should be '):]}, got {found(err['input'])}"
    return err["msg"]  # our own errors (PydanticCustomError) are already worded


def invalid(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> ValidationError:
    """A validation error at loc, already worded, for a validator to raise: pydantic puts
    the field's path in front of loc, and problem() turns it into file:line:col."""
    return ValidationError.from_exception_data(kind, [{
        "type": PydanticCustomError(kind, message), "loc": loc, "input": value}])


def suggest(name: str, valid: list[str]) -> str:
    """'; did you mean X?' for a near miss, else '; expected one of ...' ('' if none)."""
    if not valid:
        return ""
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; expected one of " + ", ".join(valid)


def _fields_at(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the model found by walking loc from the given root model."""
    current: Any = model
    for part in loc:
        current = _strip_optional(current)
        if typing.get_origin(current) in (list, tuple, dict):
            current = typing.get_args(current)[-1]  # part is an index or a mapping key
        elif isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return []
            current = current.model_fields[str(part)].annotation
        else:
            return []
    current = _strip_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _strip_optional(tp: Any) -> Any:
    """X | None -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


M = TypeVar("M", bound=BaseModel)


def load_settings(path: Path, context: str, model: type[M]) -> M:
    """A settings file (agent.yml, opsagent.yml): one YAML mapping validated by `model`;
    raises Problems, each at its file, line and column."""
    doc = load_one(path, context)
    if not isinstance(doc.data, dict):
        raise Problems([doc.problem((), context, "", "expected a mapping of settings")])
    try:
        return model.model_validate(doc.data)
    except ValidationError as e:
        raise Problems(problem(doc, err, context, model) for err in e.errors()) from None
