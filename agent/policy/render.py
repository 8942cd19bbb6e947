"""Jinja2 in policy string values, rendered per host with inventory variables.

Undefined variables are errors (StrictUndefined), reported at the string's position.
The environment is sandboxed: templates can read variables, not reach into Python, and
what one string may cost to render is bounded (agent.policy.sandbox).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError

from agent.core.hosts import HostInfo
from agent.errors import Problem, dotted
from agent.policy.load import Document, Loc
from agent.policy.sandbox import MAX_ITEMS, BoundedEnvironment, TooCostly, deadline

MAX_TEMPLATE_BYTES = 1024 * 1024
FILE_OPTIONS = ("trim_blocks", "lstrip_blocks", "keep_trailing_newline")  # jinja_env_kwargs


class TemplateFileError(Exception):
    """A template file that does not render: the message names the file and line."""


class Renderer:
    def __init__(self) -> None:
        self.env = BoundedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        self._compiled: dict[str, Template] = {}

    def variables(self, host: HostInfo) -> dict[str, Any]:
        return {**host.vars, "host": {"name": host.name, "groups": list(host.groups)}}

    def render(
        self, value: Any, variables: dict[str, Any], doc: Document, loc: Loc, context: str,
        problems: list[Problem],
    ) -> Any:
        """value with every templated string rendered; problems collects what failed."""
        if isinstance(value, dict):
            return {
                k: self.render(v, variables, doc, (*loc, k), context, problems)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.render(v, variables, doc, (*loc, i), context, problems)
                for i, v in enumerate(value)
            ]
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        try:
            template = self._compiled.get(value)
            if template is None:
                template = self._compiled[value] = self.env.from_string(value)
            with deadline():
                return template.render(variables)
        except TooCostly as e:
            message = f"template refused: {e}"
        except MemoryError:
            message = "template refused: rendering it needs more memory than there is"
        except RecursionError:
            message = "template refused: it nests or recurses too deeply"
        except UndefinedError as e:
            what = (e.message or "").removesuffix(" is undefined")
            message = f"undefined variable {what}"
        except TemplateError as e:
            message = f"template error: {e.message or e}"
        problems.append(doc.problem(loc, context, dotted(loc), message))
        return value

    def condition(self, expression: str, variables: dict[str, Any]) -> bool:
        """A `when:` expression's truth, evaluated in the sandbox on the controller.

        Raises ValueError saying why it cannot be (an undefined name, a syntax error)."""
        try:
            compiled = self.env.compile_expression(expression, undefined_to_none=False)
            with deadline():
                return bool(compiled(**variables))
        except TooCostly as e:
            raise ValueError(f"condition refused: {e}") from None
        except (MemoryError, RecursionError):
            raise ValueError("condition refused: it needs too much memory or nesting") from None
        except UndefinedError as e:
            what = (e.message or "").removesuffix(" is undefined")
            raise ValueError(f"undefined variable {what}") from None
        except TemplateError as e:
            raise ValueError(f"condition error: {e.message or e}") from None

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


def _line(path: Path) -> str:
    """':LINE' of the template where the exception being handled was raised, if known."""
    frames = [f for f in traceback.extract_tb(sys.exc_info()[2]) if f.filename == str(path)]
    return f":{frames[-1].lineno}" if frames else ""
