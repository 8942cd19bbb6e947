"""The `tasks` kind: an ordered list of pyinfra operations by name; the escape hatch.

    spec:
      tasks:
        - name: sandbox folder
          files.directory: {path: /srv/app, mode: "755"}
        - server.shell: {commands: ["make install"]}
          creates: /usr/local/bin/app

Every operation's arguments are checked against its real signature when the policy is
validated. Relative `src` of files.template / files.put is looked up in templates/.

A files.template source is rendered here, per host, when the policy is validated: in the
same bounded sandbox as policy strings, with the same variables (inventory vars,
`host.name`, `host.groups`) plus the task's own extra arguments. So a syntax error or an
undefined variable in a .j2 file is a validation error with the file's line, and no
template runs unsandboxed on the controller; the host gets the rendered text, as
pyinfra's own files.template would put it. A `src` must lie inside templates/ (links
resolved) unless the task says `allow_outside_templates: true`; such a task is then
sensitive unless it says otherwise, so a file such as /etc/shadow never reaches a diff.

Secret references (`{env: NAME}`, `{file: PATH}`) may stand for any argument value, at
any depth; they are resolved on the controller when the policy is planned, and a task
that uses one, or whose arguments or rendered template hold a secret's value (e.g. from
an inventory variable that is a reference), is sensitive: its diff and output are
replaced by a note and a hash everywhere (Ansible's no_log, Puppet's Sensitive).
`sensitive: true` asks for that on any task, `sensitive: false` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.secrets import SecretError, holds_secret, resolve_all
from agent.core.steps import Guard, Observation, Rendered, Sequence, Step
from agent.engine import catalog
from agent.engine.registered import STAND_IN
from agent.kinds.contract import Action, Facts, Finding
from agent.kinds.loop import LoopControl, expand, failures
from agent.policy.messages import invalid, suggest
from agent.policy.render import FILE_OPTIONS, LOOP, VARS, Renderer, TemplateFileError

if TYPE_CHECKING:
    from prometheus_client.core import Metric

REGISTERED = "registered"  # in the validation context: names registered so far
_SRC_OPS = ("files.template", "files.put")
_PUT_ARGS = ("dest", "user", "group", "mode", "create_remote_dir")  # what files.template passes on


class Task(Guard):
    """One operation: `module.function: {arguments}`, optionally named and guarded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(None, examples=["sandbox folder"],
                             description="Shown in plans, recaps and history.")
    operation: str = Field(
        examples=["files.line"],
        description="Written as the task's key: `files.line: {path: ..., line: ...}`; "
        "see `opsagent explain tasks files.line`."
    )
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"path": "/etc/motd",
                                 "line": "managed by opsagent"}], description="The key's value.")
    sensitive: bool | None = Field(
        None, examples=[True], description="Hide this task's diff and output everywhere (terminal, --json, "
        "state store, audit log, reports): a note and a hash stand in their place. Default: "
        "true when the task uses a secret reference or a secret's value, or reads a src "
        "outside templates/; else false.")
    when: str | bool | None = Field(None, examples=["'web' in host.groups and port > 1024"],
                                    description="A Jinja2 expression over the host's "
                                    "variables, host.name/host.groups, facts.*, the loop's "
                                    "item and earlier tasks' registered results, evaluated on "
                                    "the controller (when the policy is planned, or, if it "
                                    "reads a registered result, just before the task would "
                                    "run); false: the task is skipped on that host, saying "
                                    "so.")
    register_: str | None = Field(None, alias="register", examples=["app_version"],
                                  description="Keep this "
                                 "task's result on the host under this name, for later "
                                 "tasks' when: (status, changed, failed, skipped, stdout, "
                                 "stderr, stdout_lines; a loop's under results).")
    notify: list[str] = Field(default_factory=list, examples=[["reload nginx"]],
                              description="Handlers (by name) to run at the end of the policy "
                              "when this task changed something on the host.")
    tags: list[str] = Field(default_factory=list, examples=[["config", "nginx"]],
                            description="For --tags and --skip-tags (beside the policy's "
                            "own tags); always: runs whatever --tags says; never: only when "
                            "--tags names it.")
    vars: dict[str, Any] | None = Field(None, examples=[{"group": "admins"}], description="Variables "
                                        "of this task alone, beside the host's (and over "
                                        "them), rendered with the host's; an include's vars "
                                        "reach every task it includes.")
    loop: list[Any] | str | None = Field(None, examples=["{{ users }}"], description="Run the "
                                         "task once per item of this list (or of the list "
                                         "\"{{ EXPRESSION }}\" gives); each item is its own "
                                         "step, seen as {{ item }}.")
    loop_control: LoopControl | None = Field(None, examples=[{"loop_var": "user"}],
                                             description="How the loop names its items.")
    allow_outside_templates: bool = Field(
        False, examples=[True], description="Let files.template / files.put read a src outside the templates "
        "folder (e.g. an absolute path). The task is then sensitive unless it says otherwise.")

    _items: tuple[Task, ...] = PrivateAttr(())
    _label: str = PrivateAttr("")
    _looped: bool = PrivateAttr(False)
    _scoped_here: bool = PrivateAttr(False)  # validated by _scoped, with its own variables

    @model_validator(mode="wrap")
    @classmethod
    def _scoped(cls, data: Any, handler: ModelWrapValidatorHandler[Task], info: ValidationInfo
                ) -> Task:
        """A task with vars: or loop: is rendered here, with them beside the host's variables
        (the policy renderer leaves it as written)."""
        if not isinstance(data, dict) or (LOOP not in data and VARS not in data):
            return handler(data)
        context = dict(info.context or {})
        renderer: Renderer = context.get("renderer") or Renderer()
        variables = context.get("variables", {})
        own = data.get(VARS) or {}
        if not isinstance(own, dict) or not all(isinstance(k, str) and k.isidentifier()
                                                for k in own):
            raise invalid((VARS,), "task_vars", "expected a mapping of variable names to values",
                        own)
        failed: list[tuple[tuple[str | int, ...], str]] = []
        own = renderer.render_at(own, variables, (VARS,), failed)
        if failed:
            raise failures(failed, own)
        scope = {**variables, **own}
        rest = {k: v for k, v in data.items() if k != VARS}

        def one(rendered: dict[str, Any], context: dict[str, Any]) -> Task:
            task = cls.model_validate(rendered, context=context)
            task._scoped_here = True
            return task

        if LOOP not in rest:
            rendered = renderer.render_at(rest, scope, (), failed)
            if failed:
                raise failures(failed, rest)
            return one(rendered, {**context, "variables": scope})
        templated = "{{" in str(data.get("name") or "")
        items = expand(rest, scope, context, one)
        for label, item in items:
            item._label = "" if templated else label
            item._looped = True
        first = items[0][1] if items else None
        looped = cls.model_construct(
            name=data.get("name") if isinstance(data.get("name"), str) else None,
            operation=first.operation if first else "", args={},
            notify=sorted({n for _, item in items for n in item.notify}),
            loop=[], loop_control=None)
        looped._items = tuple(item for _, item in items)
        return looped

    def each(self) -> tuple[Task, ...]:
        """The tasks this one stands for: itself, or one per item of its loop (maybe none)."""
        return self._items if self.loop is not None else (self,)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or "operation" in data:
            return data
        ops = [k for k in data if "." in k]
        if len(ops) != 1:
            found = ", ".join(ops) if ops else "none"
            raise PydanticCustomError(
                "task_operation",
                "a task names exactly one operation (a key such as files.line); found {found}",
                {"found": found},
            )
        op = ops[0]
        args = data[op] if data[op] is not None else {}
        try:
            args, used_secret = resolve_all(args, (op,))
        except SecretError as e:
            raise invalid(e.args[1], "secret", e.args[0], "(a secret reference)") from None
        outside = data.get("allow_outside_templates") is True
        _check_args(op, args, info, outside)
        rest = {k: v for k, v in data.items() if k != op}
        coerced = _coerce(op, args, info)
        if "sensitive" not in rest and (used_secret or outside or holds_secret(coerced)):
            rest["sensitive"] = True
        return {**rest, "operation": op, "args": coerced}

    _skip: str = PrivateAttr("")
    _later: tuple[str, dict[str, Any]] | None = PrivateAttr(None)  # a when: on registered results

    @model_validator(mode="after")
    def _condition(self, info: ValidationInfo) -> Task:
        if self._scoped_here:
            return self  # _scoped validated it with its vars; this is the outer pass
        context = info.context or {}
        registered: list[str] = context.get(REGISTERED, [])
        if isinstance(self.when, str) and "renderer" in context:
            renderer: Renderer = context["renderer"]
            variables = context.get("variables", {})
            later = renderer.names(self.when) & set(registered)
            try:  # one on results registered on the host is only checked here
                holds = renderer.condition(self.when, {**variables,
                                                       **dict.fromkeys(later, STAND_IN)})
            except ValueError as e:
                raise invalid(("when",), "condition", str(e), self.when) from None
            if later:
                self._later = (self.when, variables)
            else:
                self._skip = "" if holds else f"when: {self.when} is false"
        elif self.when is False:
            self._skip = "when: false"
        if self.register_:
            if not self.register_.isidentifier():
                raise invalid(("register",), "register", "expected a variable name (letters, "
                            f"digits and _, not starting with a digit), got {self.register_!r}",
                            self.register_)
            registered.append(self.register_)
        return self

    @property
    def skip(self) -> str:
        return self._skip

    def step(self, handler: str = "") -> Step:
        """This task as the engine runs it."""
        when, scope = self._later or ("", {})
        return Step(self.title(), self.operation, self.args, self.guard(),
                    sensitive=bool(self.sensitive), tags=tuple(self.tags),
                    notify=tuple(self.notify), handler=handler, skip=self.skip, when=when,
                    scope=scope, register=self.register_ or "", looped=self._looped)

    @field_validator("notify", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def guard(self) -> Guard | None:
        guard = Guard(creates=self.creates, removes=self.removes, unless=self.unless,
                      only_if=self.only_if)
        return None if guard.is_empty() else guard

    def title(self) -> str:
        if self.name:
            return f"{self.name} ({self._label})" if self._label else self.name
        first = next(iter(self.args.values()), "")
        if isinstance(first, Rendered):
            first = first.source
        if isinstance(first, list):
            first = " ".join(str(x) for x in first)
        text = f"{self.operation} {first}".strip()
        text = text if len(text) <= 60 else text[:57] + "..."
        return f"{text} ({self._label})" if self._label else text


class TasksSpec(BaseModel):
    """Ordered pyinfra operations, run top to bottom on every target host."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[Task] = Field(min_length=1, description="The operations, in order. An item "
                              "`- include: FILE` (with `vars:`) stands for the tasks of a task "
                              "file of the policies folder (a YAML list of tasks).", examples=[
        [{"name": "sandbox folder", "files.directory": {"path": "/srv/app", "mode": "755"}}]])
    handlers: list[Task] = Field(default_factory=list, description="Tasks run once per host at "
                                 "the end of the policy, in this order, only when a task that "
                                 "notifies them changed something there (also after a later "
                                 "failure); each needs a name.", examples=[[
                                     {"name": "reload nginx", "server.service": {
                                         "service": "nginx", "reloaded": True}}]])

    @model_validator(mode="before")
    @classmethod
    def _registers(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(info.context, dict):
            info.context[REGISTERED] = []  # names tasks register, in order, for later when:
        return data

    @model_validator(mode="after")
    def _handlers_known(self) -> TasksSpec:
        names = [h.name for h in self.handlers]
        for i, handler in enumerate(self.handlers):
            if not handler.name:
                raise invalid(("handlers", i), "handler_name", "a handler needs a name (what "
                            "tasks notify)", None)
            if handler.notify:
                raise invalid(("handlers", i, "notify"), "handler_notify", "a handler cannot "
                            "notify another: list both in the tasks' notify", handler.notify)
            if names.count(handler.name) > 1:
                raise invalid(("handlers", i, "name"), "handler_name", f"handler name "
                            f"{handler.name!r} is used twice", handler.name)
        for i, task in enumerate(self.tasks):
            for j, name in enumerate(dict.fromkeys(n for t in task.each() for n in t.notify)):
                if name not in names:
                    raise invalid(("tasks", i, "notify", j), "unknown_handler", f"no handler "
                                f"named {name!r}{suggest(name, [n for n in names if n])}", name)
        return self


class TasksKind:
    name = "tasks"
    Spec = TasksSpec
    actions: dict[str, Action[TasksSpec, Any]] = {}
    includes = ("tasks", "handlers")
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def plan(self, spec: TasksSpec, host: HostInfo) -> list[Step | Sequence]:
        steps = [t.step() for task in spec.tasks for t in task.each()]
        return [*steps, *(h.step(handler.name or "") for handler in spec.handlers
                          for h in handler.each())]

    def observe(self, spec: TasksSpec, host: HostInfo, ops: list[OpResult]) -> Observation | None:
        return None  # the operations' own results say it all

    def families(self, rows: Facts) -> Iterable[Metric]:
        return ()  # the run metrics every kind has are enough

    def findings(self, rows: Facts) -> list[Finding]:
        return []  # its failures are the report's failed operations


KIND = TasksKind()




def _check_args(op: str, args: Any, info: ValidationInfo, outside: bool) -> None:
    try:
        catalog.check(op)
    except catalog.UnknownOperation as e:
        raise invalid((op,), "unknown_operation", str(e), op) from None
    if not isinstance(args, dict):
        raise invalid((op,), "task_arguments", "expected a mapping of arguments", args)
    if op in _SRC_OPS and isinstance(args.get("src"), str):
        src = _template_path(args["src"], info)
        if not src.is_file():
            raise invalid((op, "src"), "template_missing", f"no such file: {src}", args["src"])
        base = Path((info.context or {}).get("templates", Path("templates")))
        if not outside and not src.resolve().is_relative_to(base.resolve()):
            raise invalid((op, "src"), "template_outside", f"{src} is outside the templates "
                        f"folder {base}: a policy reads its files from there (write "
                        "allow_outside_templates: true on the task to read it anyway)",
                        args["src"])


def _coerce(op: str, args: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    model = catalog.arguments_model(op)
    if model.model_config.get("extra") != "forbid":  # takes **kwargs: a name pyinfra keeps fails
        taken = [k for k in args if k in catalog.RESERVED_ARGUMENTS]
        if taken:
            raise invalid((op, taken[0]), "reserved_argument", f"{taken[0]!r} cannot be passed to "
                        f"{op}: pyinfra uses that name itself; choose another (e.g. "
                        f"'{taken[0]}_')", taken[0])
    else:
        known = catalog.argument_names(op)
        unknown = [k for k in args if k not in known]
        if unknown:
            name = unknown[0]
            hint = suggest(name, catalog.parameter_names(op))
            raise invalid((op, name), "unknown_argument", f"unknown argument for {op}{hint}", name)
    try:
        checked = model.model_validate(args)
    except ValidationError as e:
        errors: list[InitErrorDetails] = [
            {"type": err["type"], "loc": (op, *err["loc"]), "input": err["input"],
             "ctx": err.get("ctx") or {}}
            for err in e.errors()
        ]
        raise ValidationError.from_exception_data("task", errors) from None
    out = checked.model_dump(exclude_unset=True, by_alias=True)
    if op in _SRC_OPS and isinstance(out.get("src"), str):
        out["src"] = str(_template_path(out["src"], info))
        if op == "files.template":
            return _rendered(out, info)
    return out


def _rendered(args: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """files.template's arguments with its source rendered for this host."""
    op = "files.template"
    context = info.context or {}
    renderer = context.get("renderer") or Renderer()
    own = {"src", "jinja_env_kwargs", *_PUT_ARGS, *catalog.GLOBAL_ARGUMENTS}
    data = {k: v for k, v in args.items() if k not in own}
    options = args.get("jinja_env_kwargs") or {}
    bad = [k for k in options if k not in FILE_OPTIONS or not isinstance(options[k], bool)]
    if bad:
        raise invalid((op, "jinja_env_kwargs", bad[0]), "template_option",
                    f"not a template option opsagent allows; expected true or false for one "
                    f"of {', '.join(FILE_OPTIONS)}", bad[0])
    try:
        text = renderer.render_file(Path(args["src"]), {**context.get("variables", {}), **data},
                                    options)
    except TemplateFileError as e:
        raise invalid((op, "src"), "template_file", str(e), args["src"]) from None
    kept = {k: v for k, v in args.items() if k in _PUT_ARGS or k in catalog.GLOBAL_ARGUMENTS}
    return {"src": Rendered(text, args["src"]), **kept}


def _template_path(src: str, info: ValidationInfo) -> Path:
    path = Path(src)
    if path.is_absolute():
        return path
    base = (info.context or {}).get("templates", Path("templates"))
    return Path(base) / path
