"""pyinfra operations by dotted name, with an argument model built from each real signature.

`tasks` policies and playbooks name operations as `module.function`; a wrong name or
argument is caught here, at validation time, never on a host. Names and signatures come
from the catalogue of signatures.py (pyinfra read once per version); the functions
themselves, to run or to document, from pyinfra.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import typing
from functools import cache
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.engine import signatures

# pyinfra's global arguments that a task may set. Execution arguments (_serial,
# _parallel, _run_once) must agree across hosts, callables cannot be written in
# YAML, and passwords would have to be inlined: those are left out.
GLOBAL_ARGUMENTS: dict[str, Any] = {
    "_sudo": bool,
    "_sudo_user": str,
    "_use_sudo_login": bool,
    "_preserve_sudo_env": bool,
    "_su_user": str,
    "_use_su_login": bool,
    "_doas": bool,
    "_doas_user": str,
    "_env": dict[str, str],
    "_chdir": str,
    "_shell_executable": str,
    "_success_exit_codes": list[int],
    "_timeout": int,
    "_get_pty": bool,
    "_stdin": str | list[str],
    "_ignore_errors": bool,
    "_continue_on_error": bool,
    "_retries": int,
    "_retry_delay": float,
}


# How a step's facts are read (agent/engine/prefetch.py), as `opsagent explain tasks` says.
BATCHED = ("Facts: every step's facts are read together with the other steps' in one remote "
           "command per round, so a converged host costs one or two commands however many "
           "steps it has. There, file facts (File, Directory, Link, Sha1File, and the line "
           "search of files.line) are answered without starting a process when the answer is "
           "sure to be what their command prints, and a small file's checksum comes with its "
           "stat. Two kinds of step read theirs the way pyinfra does, one command each: "
           "a step with global arguments (_sudo, _su_user, _env, _chdir, _timeout, ...), and "
           "the step after one that changed something. A host without python3 reads every "
           "fact that way. Commands (server.shell, ...) run as always.")


class UnknownOperation(ValueError):
    pass


# Names add_op() takes for itself: an operation's **kwargs (files.template's template
# variables) may not use them.
RESERVED_ARGUMENTS = frozenset({"name", "host", "state", "op_func"})


def modules() -> tuple[str, ...]:
    return tuple(signatures.catalogue())


def operations(module_name: str) -> tuple[str, ...]:
    """The operations of one pyinfra module, e.g. files: block, directory, ... (sorted)."""
    found = signatures.catalogue().get(module_name)
    if found is None:
        close = difflib.get_close_matches(module_name, modules(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownOperation(f"unknown operation module {module_name!r}{hint}")
    return tuple(found)


def check(name: str) -> None:
    """UnknownOperation, saying what was meant, unless 'module.function' is an operation."""
    module_name, _, func_name = name.partition(".")
    names = operations(module_name)
    if not func_name:
        raise UnknownOperation(f"{module_name!r} is an operation module: name one of its "
                               f"operations, e.g. {module_name}.{names[0]} (opsagent explain "
                               f"tasks {module_name} lists them)")
    if func_name not in names:
        close = difflib.get_close_matches(func_name, names, n=1)
        hint = f"did you mean '{module_name}.{close[0]}'?" if close else "expected one of " + (
            ", ".join(names)
        )
        raise UnknownOperation(f"unknown operation {name!r}; {hint}")


@cache
def operation(name: str) -> Any:
    """The pyinfra operation function for 'module.function' (imports its module)."""
    check(name)
    module_name, _, func_name = name.partition(".")
    return getattr(importlib.import_module(f"pyinfra.operations.{module_name}"), func_name)


def live_modules() -> tuple[str, ...]:
    """pyinfra's operation modules, read from pyinfra itself (for the catalogue)."""
    import pyinfra.operations

    return tuple(
        sorted(m.name for m in pkgutil.iter_modules(pyinfra.operations.__path__) if not m.ispkg)
    )


def live_operations(module_name: str) -> tuple[str, ...]:
    module = importlib.import_module(f"pyinfra.operations.{module_name}")
    return tuple(sorted(
        n for n, f in vars(module).items() if callable(f) and hasattr(f, "_inner") and n[0] != "_"
    ))


def is_idempotent(name: str) -> bool:
    return bool(operation(name)._inner.is_idempotent)


@cache
def arguments_model(name: str) -> type[BaseModel]:
    """A pydantic model of the operation's parameters plus the allowed global arguments,
    from the signature catalogue (pyinfra itself for an operation it marks live)."""
    check(name)
    module_name, _, func_name = name.partition(".")
    entry = signatures.catalogue()[module_name][func_name]
    fields: dict[str, Any] = {}
    if entry.get("live"):
        takes_any = _live_fields(operation(name)._inner, fields)
    else:
        takes_any = bool(entry["any"])
        for param in entry["params"]:
            fields[_field_name(param["name"])] = (signatures.read_type(param["type"]), Field(
                param.get("default", ...), alias=param["name"]))
    for gname, gtype in GLOBAL_ARGUMENTS.items():
        fields[_field_name(gname)] = (gtype | None, Field(None, alias=gname))
    config = ConfigDict(extra="allow" if takes_any else "forbid", arbitrary_types_allowed=True,
                        coerce_numbers_to_str=True)  # "{{ port }}" is a number, line: wants text
    model: type[BaseModel] = create_model(
        name.replace(".", "_"), __config__=config, **fields
    )
    return model


def _live_fields(inner: Any, fields: dict[str, Any]) -> bool:
    """The fields of the operation's signature read from pyinfra; whether it takes **kwargs."""
    params, takes_any = read_signature(inner)
    for pname, annotation, default in params:
        fields[_field_name(pname)] = (annotation, Field(default, alias=pname))
    return takes_any


def read_signature(inner: Any) -> tuple[list[tuple[str, Any, Any]], bool]:
    """An operation's parameters as (name, the type a YAML value must have, its default or
    ...), and whether it takes **kwargs; *args are left out."""
    try:
        hints = typing.get_type_hints(inner)
    except Exception:  # an annotation pyinfra's module cannot resolve: fall back per parameter
        hints = {}
    params = []
    takes_any = False
    for pname, param in inspect.signature(inner).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any = True
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
            default = ... if param.default is inspect.Parameter.empty else param.default
            params.append((pname, yaml_type(hints.get(pname), param.default), default))
    return params, takes_any


def _field_name(name: str) -> str:
    """pydantic treats names with a leading underscore as private: rename, keep the alias."""
    return f"arg{name}" if name.startswith("_") else name


def argument_names(name: str) -> set[str]:
    """Every argument the operation accepts from YAML, its own and the global ones."""
    return {f.alias or n for n, f in arguments_model(name).model_fields.items()}


def parameter_names(name: str) -> list[str]:
    return [alias for n, f in arguments_model(name).model_fields.items()
            if (alias := f.alias or n) not in GLOBAL_ARGUMENTS]


def yaml_type(hint: Any, default: Any) -> Any:
    """The type a YAML value must have for this parameter."""
    if hint is None:
        if default is inspect.Parameter.empty or default is None:
            return Any
        return type(default) | None if not isinstance(default, bool) else bool
    text = str(hint)
    if "IO" in text or hint is IO or "Callable" in text or "Function" in text:
        return Any  # file objects and callables: only their string form can come from YAML
    return hint
