"""Jinja2 in policy string values, rendered per host with inventory variables.

Undefined variables are errors (StrictUndefined), reported at the string's position.
A string that is just "{{ EXPR }}" takes the expression's value with its type (a number
stays a number, a list a list), as Ansible's do; other strings render to text. A mapping
with a `loop:` or `vars:` key is left to its kind, which renders it once per item, with
its own variables.
The environment is sandboxed: templates can read variables, not reach into Python, and
what one string may cost to render is bounded (agent.policy.sandbox).
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
)

from agent.core.hosts import HostInfo
from agent.errors import Problem, dotted
from agent.policy.load import Document, Loc
from agent.policy.sandbox import MAX_ITEMS, BoundedEnvironment, TooCostly, deadline

MAX_TEMPLATE_BYTES = 1024 * 1024
LOOP = "loop"  # a mapping with this key is rendered by its kind, once per item
VARS = "vars"  # a mapping with this key is rendered by its kind, with these variables
_WHOLE = re.compile(r"\{\{\s*(.+?)\s*\}\}", re.DOTALL)
FILE_OPTIONS = ("trim_blocks", "lstrip_blocks", "keep_trailing_newline")  # jinja_env_kwargs


class TemplateFileError(Exception):
    """A template file that does not render: the message names the file and line."""


class Renderer:
    def __init__(self) -> None:
        self.env = BoundedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        self._compiled: dict[str, Template] = {}

    def variables(self, host: HostInfo) -> dict[str, Any]:
        found = {"host": {"name": host.name, "groups": list(host.groups)}}
        if host.facts is not None:
            found["facts"] = dict(host.facts)
        return {**host.vars, **found}

    def render(
        self, value: Any, variables: dict[str, Any], doc: Document, loc: Loc, context: str,
        problems: list[Problem],
    ) -> Any:
        """value with every templated string rendered; problems collects what failed."""
        failed: list[tuple[Loc, str]] = []
        out = self.render_at(value, variables, loc, failed)
        problems.extend(doc.problem(at, context, dotted(at), message) for at, message in failed)
        return out

    def render_at(self, value: Any, variables: dict[str, Any], loc: Loc,
                  failed: list[tuple[Loc, str]]) -> Any:
        """value with every templated string rendered; failed collects (loc, why) of the others.

        A mapping with a `loop:` or `vars:` key is left as written: its kind renders it (once
        per item, with its own variables)."""
        if isinstance(value, dict):
            if LOOP in value or VARS in value:
                return value
            return {k: self.render_at(v, variables, (*loc, k), failed) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render_at(v, variables, (*loc, i), failed) for i, v in enumerate(value)]
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        try:
            return self.value_of(value, variables)
        except ValueError as e:
            failed.append((loc, str(e)))
            return value

    def value_of(self, text: str, variables: dict[str, Any]) -> Any:
        """A templated string's value: one that is just "{{ EXPR }}" keeps the expression's
        type (a number stays a number, a list a list), as Ansible's are; others render to text.

        Raises ValueError saying why it cannot be rendered."""
        whole = _WHOLE.fullmatch(text)
        if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
            return self._evaluate(whole.group(1), variables, "template")
        try:
            template = self._compiled.get(text)
            if template is None:
                template = self._compiled[text] = self.env.from_string(text)
            with deadline():
                return template.render(variables)
        except Exception as e:  # noqa: BLE001 - every render failure is the policy's, worded
            raise ValueError(_why(e, "template")) from None

    def condition(self, expression: str, variables: dict[str, Any]) -> bool:
        """A `when:` expression's truth, evaluated in the sandbox on the controller.

        Raises ValueError saying why it cannot be (an undefined name, a syntax error)."""
        return bool(self._evaluate(expression, variables, "condition"))

    def names(self, expression: str) -> set[str]:
        """The variables an expression reads (none, when it does not parse)."""
        try:
            return meta.find_undeclared_variables(self.env.parse(f"{{{{ ({expression}) }}}}"))
        except TemplateError:
            return set()

    def _evaluate(self, expression: str, variables: dict[str, Any], what: str) -> Any:
        try:
            compiled = self.env.compile_expression(expression, undefined_to_none=False)
            with deadline():
                value = compiled(**variables)
                if isinstance(value, Undefined):
                    str(value)  # raises UndefinedError, naming it
                return _plain(value)
        except Exception as e:  # noqa: BLE001 - every render failure is the policy's, worded
            raise ValueError(_why(e, what)) from None

    def render_file(self, path: Path, variables: dict[str, Any],
                    options: dict[str, bool] | None = None) -> str:
        """A template file rendered in the sandbox; raises TemplateFileError."""
        env = self.env if not options else self.env.overlay(
            trim_blocks=options.get("trim_blocks", self.env.trim_blocks),
            lstrip_blocks=options.get("lstrip_blocks", self.env.lstrip_blocks),
            keep_trailing_newline=options.get("keep_trailing_newline", True))
        try:
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise TemplateFileError(f"{path}: larger than {MAX_TEMPLATE_BYTES} bytes")
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TemplateFileError(f"{path}: cannot read: {e}") from None
        try:
            code = env.compile(source, filename=str(path))  # errors then name the file's lines
            template = env.template_class.from_code(env, code, env.make_globals(None))
            size, parts = 0, []
            with deadline():
                for part in template.generate(variables):
                    size += len(part)
                    if size > MAX_ITEMS * 16:
                        raise TooCostly(f"renders to more than {MAX_ITEMS * 16} characters")
                    parts.append(part)
            return "".join(parts)
        except TemplateSyntaxError as e:
            raise TemplateFileError(f"{path}:{e.lineno}: template error: {e.message}") from None
        except UndefinedError as e:
            what = (e.message or "").removesuffix(" is undefined")
            raise TemplateFileError(f"{path}{_line(path)}: undefined variable {what}") from None
        except TooCostly as e:
            raise TemplateFileError(f"{path}{_line(path)}: template refused: {e}") from None
        except (MemoryError, RecursionError):
            raise TemplateFileError(f"{path}: template refused: it needs too much memory or "
                                    "nesting") from None
        except TemplateError as e:
            raise TemplateFileError(f"{path}{_line(path)}: template error: {e}") from None


def _why(e: Exception, what: str) -> str:
    """Why a string or expression did not render, in the words of a policy error."""
    if isinstance(e, TooCostly):
        return f"{what} refused: {e}"
    if isinstance(e, MemoryError):
        return f"{what} refused: rendering it needs more memory than there is"
    if isinstance(e, RecursionError):
        return f"{what} refused: it nests or recurses too deeply"
    if isinstance(e, UndefinedError):
        message = e.message or ""
        if message.endswith(" is undefined"):
            return f"undefined variable {message.removesuffix(' is undefined')}"
        return f"undefined: {message}"  # 'dict object' has no attribute 'nmae'
    if isinstance(e, TemplateError):
        return f"{what} error: {e.message or e}"
    return f"{what} error: {e}"  # e.g. 1 + 'a' in an expression: a TypeError


def _plain(value: Any) -> Any:
    """An expression's value as YAML could have written it: generators and ranges become
    lists, markup becomes text."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | range | Iterator):
        items: list[Any] = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise TooCostly(f"a list of more than {MAX_ITEMS} items")
            items.append(_plain(item))
        return items
    return value


def _line(path: Path) -> str:
    """':LINE' of the template where the exception being handled was raised, if known."""
    frames = [f for f in traceback.extract_tb(sys.exc_info()[2]) if f.filename == str(path)]
    return f":{frames[-1].lineno}" if frames else ""
