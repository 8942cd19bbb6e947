"""Jinja2 in policy string values, rendered per host with inventory variables.

Undefined variables are errors (StrictUndefined), reported at the string's position.
The environment is sandboxed: templates can read variables, not reach into Python, and
what one string may cost to render is bounded (agent.policy.sandbox).
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError

from agent.errors import Problem, dotted
from agent.kinds.base import HostInfo
from agent.policy.load import Document, Loc
from agent.policy.sandbox import BoundedEnvironment, TooCostly, deadline


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
