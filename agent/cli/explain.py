"""`opsagent explain KIND [OPERATION]`: a kind's fields, types and descriptions, from its models.

For `tasks`, naming an operation (e.g. files.line) lists that operation's arguments; for
`security`, naming a profile (debian-baseline) lists its controls.
"""

from __future__ import annotations

import inspect
import json
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel

from agent.cli.common import Parser
from agent.core.durations import Duration
from agent.kinds import KINDS
from agent.policy.model import Envelope


def main(argv: list[str]) -> int:
    parser = Parser(prog="opsagent explain", description=__doc__)
    parser.add_argument("kind", help="one of: " + ", ".join(sorted(KINDS)) + "; or playbook, "
                                     "project (opsagent.yml), agent (agent.yml), inventory, "
                                     "secrets")
    parser.add_argument("operation", nargs="?", help="tasks: a pyinfra operation "
                        "(files.line) or module (files); security: a profile (debian-baseline)")
    args = parser.parse_args(argv)
    if args.kind == "playbook" and not args.operation:
        return _playbook()
    if args.kind in TOPICS and not args.operation:
        return _topic(args.kind)
    if args.kind not in KINDS:
        parser.error(f"unknown kind {args.kind!r}; expected one of {', '.join(sorted(KINDS))}")
    if args.operation:
        if args.kind == "security":
            return _profile(parser, args.operation)
        if args.kind == "tasks" and "." not in args.operation:
            return _module(parser, args.operation)
        return _operation(parser, args.kind, args.operation)
    kind = KINDS[args.kind]
    print(f"kind: {args.kind}\n")
    print(inspect.cleandoc(kind.Spec.__doc__ or "") + "\n")
    print("envelope (every kind):")
    for line in describe(Envelope, exclude={"kind", "spec"}):
        print("  " + line)
    print("\nspec:")
    for line in describe(kind.Spec):
        print("  " + line)
    if args.kind == "tasks":
        from agent.engine import catalog

        print("\noperations (opsagent explain tasks MODULE, or MODULE.OPERATION for arguments):")
        for module in catalog.modules():
            names = catalog.operations(module)
            if names:
                print(f"  {module}: {', '.join(names)}")
        print("\n" + textwrap.fill(catalog.BATCHED, 88))
    for verb, action in kind.actions.items():
        print(f"\naction {args.kind} {verb}: {action.help} (opsagent {args.kind} {verb} POLICY; "
              f"playbook step {args.kind}.{verb})")
        for line in describe(action.Args):
            print("  " + line)
    return 0


TOPICS = {"project": ("agent.project", "Project"), "agent": ("agent.config", "AgentConfig"),
          "inventory": ("agent.inventory", "InventoryFile"),
          "secrets": ("agent.core.secrets", None)}


def _topic(name: str) -> int:
    import importlib

    module_name, model_name = TOPICS[name]
    module = importlib.import_module(module_name)
    print(inspect.cleandoc(module.__doc__ or ""))
    if model_name:
        print("\nfields:")
        for line in describe(getattr(module, model_name)):
            print("  " + line)
    return 0


def _playbook() -> int:
    from agent.playbook import model

    print(inspect.cleandoc(model.__doc__ or "") + "\n")
    print("fields:")
    for line in describe(model.Playbook, exclude={"kind"}):
        print("  " + line)
    from agent import actions

    for name in actions.names():
        step = actions.step_model(name)
        print(f"\n{inspect.cleandoc(step.__doc__ or name)}")
        for line in describe(step):
            print("  " + line)
    return 0


def _module(parser: Parser, name: str) -> int:
    """A pyinfra module's operations, each with the first line of its documentation."""
    from agent.engine import catalog

    try:
        names = catalog.operations(name)
    except catalog.UnknownOperation as e:
        parser.error(str(e))
    print(f"{name}: operations (opsagent explain tasks {name}.OPERATION for its arguments)\n")
    for op in names:
        doc = (catalog.operation(f"{name}.{op}").__doc__ or "").strip().splitlines()
        print(f"  {name}.{op}: {doc[0] if doc else ''}")
    return 0


def _profile(parser: Parser, name: str) -> int:
    from agent.kinds.security.profiles import FOLDER, NAMES, profile
    from agent.policy.messages import suggest

    if name not in NAMES:
        parser.error(f"no profile named {name!r}{suggest(name, list(NAMES))}")
    controls = profile(name)
    fixable = sum(c.fix is not None for c in controls)
    print(f"profile {name}: {len(controls)} controls, {fixable} with a fix "
          f"({FOLDER / (name + '.yml')})\n")
    for c in controls:
        reads = ", ".join(k for k, v in (c.check.reads() if c.check else {}).items() if v)
        refs = ", ".join(f"{k} {v}" for k, v in c.refs.items())
        print(f"  {c.id} [{c.severity}{', fix' if c.fix else ''}] {c.title}  ({reads}; {refs})")
    return 0


def _operation(parser: Parser, kind: str, name: str) -> int:
    if kind != "tasks":
        parser.error("an operation can only be explained for the tasks kind")
    from agent.engine import catalog

    try:
        model = catalog.arguments_model(name)
    except catalog.UnknownOperation as e:
        parser.error(str(e))
    doc = (catalog.operation(name).__doc__ or "").strip().split("\n\n")[0]
    print(f"{name}: {doc}\n\narguments:")
    for line in describe(model):
        if not line.lstrip().startswith("_"):
            print("  " + line)
    print("\nglobal arguments: " + ", ".join(catalog.GLOBAL_ARGUMENTS))
    return 0


def describe(model: type[BaseModel], indent: str = "", exclude: set[str] | None = None,
             seen: frozenset[type] = frozenset()) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        if exclude and name in exclude:
            continue
        key = info.alias or name
        if info.is_required():
            required = "required"
        else:
            required = f"default {info.get_default(call_default_factory=True)!r}"
        text = f"{indent}{key}: {_type_name(info.annotation)} ({required})"
        if info.description:
            text += f"  {info.description}"
        if info.examples:
            text += "  e.g. " + " or ".join(json.dumps(e) for e in info.examples)
        lines.append(text)
        for sub in _models(info.annotation):
            if sub not in seen:
                lines.extend(describe(sub, indent + "  ", seen=seen | {model}))
    return lines


def _models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _models(arg)]


def _type_name(tp: Any) -> str:
    if tp == Duration:
        return "duration"
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))
