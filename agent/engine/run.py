"""One run: a fresh pyinfra State, hosts connected and worked in parallel, typed results.

Apply adds each host's operations with check_for_changes off, so every fact runs once
(at execution) instead of twice; audit-mode steps are judged without executing. Check
mode adds operations with change detection on and executes nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import gevent
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import OperationMeta, add_op
from pyinfra.api.operations import run_host_op
from pyinfra.context import ctx_host, ctx_state

from agent.core.hosts import Host
from agent.core.plans import PlannedStep, RunPlan
from agent.core.results import HostResult, OpResult, RunResult, Status
from agent.core.steps import Rendered, Sequence, Step
from agent.engine import catalog, login, sequence, speedups
from agent.engine.capture import Capture, capture
from agent.engine.environment import explicit_environment
from agent.engine.guards import guard_script, guarded
from agent.engine.prefetch import Prefetch, Verdict
from agent.engine.redact import redact, redact_host
from agent.engine.registered import Registered

speedups.install()

OnResult = Callable[[str, OpResult], None]
STOPPED = "stopped: opsagent was asked to stop; the rest of this host's operations were skipped"


def _never() -> bool:
    return False


def execute(
    plan: RunPlan, *, check: bool, diff: bool = False, connect_timeout: int = 10,
    on_result: OnResult | None = None, stop: Callable[[], bool] = _never,
) -> RunResult:
    """Converge (or, with check, judge) every host of the plan; never raises for a host.

    stop() is asked before each operation: once it says True, operations under way end
    normally and the rest are skipped (how SIGTERM stops a run cleanly).
    """
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    started = time.monotonic()
    by_name = {hp.host.name: hp for hp in plan.hosts}
    inventory = Inventory(([_pyinfra_host(hp.host) for hp in plan.hosts if not hp.unreachable],
                           {}))
    config = Config(CONNECT_TIMEOUT=connect_timeout, DIFF=diff)
    state = State(inventory=inventory, config=config, check_for_changes=check)
    results = {name: HostResult(name) for name in by_name}
    for hp in plan.hosts:
        if hp.unreachable:  # known to be down while planning (its facts could not be read)
            results[hp.host.name].unreachable = True
            results[hp.host.name].error = hp.unreachable
    with capture() as logs, ctx_state.use(state), explicit_environment():
        try:
            if any(not hp.unreachable for hp in plan.hosts):
                _connect(state, results, logs)
            live = [h for h in inventory if h.name in by_name and not results[h.name].unreachable]
            work = _judge if check else _converge
            greenlets = [
                state.pool.spawn(work, state, h, by_name[h.name].steps, results[h.name], logs,
                                 on_result, stop)
                for h in live
            ]
            gevent.joinall(greenlets, raise_error=True)
        finally:
            _disconnect(state)
    for name, result in results.items():
        if result.unreachable and not result.ops:  # never connected
            result.ops = [op for s in by_name[name].steps for op in skipped(s)]
        redact_host(result)
    return RunResult([results[hp.host.name] for hp in plan.hosts], check,
                     time.monotonic() - started)


def _pyinfra_host(host: Host) -> str | tuple[str, dict[str, Any]]:
    if host.is_local:
        return "@local"
    ssh = host.ssh
    data: dict[str, Any] = {"ssh_hostname": ssh.hostname or host.name}
    for key in ("port", "user", "strict_host_key_checking"):
        if getattr(ssh, key) is not None:
            data[f"ssh_{key}"] = getattr(ssh, key)
    for key in ("key", "known_hosts_file", "config_file"):
        if getattr(ssh, key) is not None:
            data[f"ssh_{key}"] = str(Path(getattr(ssh, key)).expanduser())
    return (host.name, data)


def _connect(state: State, results: dict[str, HostResult], logs: Capture) -> None:
    with contextlib.suppress(PyinfraError):  # raised when every host is down
        connect_all(state)
    for host in state.inventory:
        if host in state.failed_hosts or not host.connected:
            results[host.name].unreachable = True
            results[host.name].error = logs.about(host.name) or "could not connect"
            continue
        _tune(host, state.config.CONNECT_TIMEOUT)


def _tune(host: Any, dead_after: int) -> None:
    """Set up the SSH socket for speed and for noticing a host that drops off the network.

    Nagle off: each command otherwise stalls ~40 ms on delayed ACKs. Keepalive probes
    every second while idle, and TCP_USER_TIMEOUT, make the kernel drop a connection
    whose data or probes go unanswered for `dead_after` seconds; paramiko then closes
    its channels and the host is reported unreachable instead of hanging the run.
    """
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None or transport.sock is None:
        return
    sock = transport.sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, dead_after * 1000)


def _disconnect(state: State) -> None:
    try:
        disconnect_all(state)
    finally:
        for host in state.inventory:  # disconnect_all leaves paramiko clients open
            client = getattr(host.connector, "client", None)
            if client is not None:
                client.close()


def _call(step: Step) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The pyinfra operation a step calls, its arguments, and its global arguments."""
    args = dict(step.args)
    operation = step.operation
    if isinstance(args.get("src"), Rendered):  # a template rendered at validation: put its text
        rendered = args["src"]
        args["src"] = StringIO(rendered.text)
        args["src"].template = rendered.source  # as pyinfra's files.template marks it
        operation = "files.put"
    options = {k: args.pop(k) for k in list(args) if k in catalog.GLOBAL_ARGUMENTS}
    if step.guard is not None:
        return guarded, {"op_name": operation, "args": args,
                         "script": guard_script(step.guard)}, options
    return catalog.operation(operation), args, options


def _add(state: State, host: Any, planned: PlannedStep, judge_only: bool) -> OperationMeta:
    step = planned.step
    assert isinstance(step, Step)
    function, args, options = _call(step)
    if judge_only:  # never executed, even if the run executes: facts are read, nothing done
        options["_if"] = _never
    name = f"{planned.policy.label} | {step.name}"
    metas = add_op(state, function, host=host, name=name, **args, **options)
    meta: OperationMeta = metas[host]
    return meta


def _walker(planned: PlannedStep) -> Callable[[], Any] | None:
    """The step's operation generator, to judge it from prefetched facts; None for a step
    that cannot be judged so (a command sequence, a step with global arguments)."""
    step = planned.step
    if not isinstance(step, Step) or any(k in catalog.GLOBAL_ARGUMENTS for k in step.args):
        return None

    def walk() -> Any:
        function, args, _ = _call(step)
        return function._inner(**args)

    return walk


def _verdict(prefetch: Prefetch, host: Any, steps: tuple[PlannedStep, ...], index: int,
             logs: Capture) -> Verdict | None:
    """Whether steps[index] changes something, judged from facts read in batches."""
    if index not in prefetch.verdicts and prefetch.ready():
        ahead = []
        for at in range(index, len(steps)):
            step = steps[at].step
            if isinstance(step, Step) and (step.skip or step.handler):
                continue  # never runs, or runs only after a change (which ends the look)
            ahead.append((at, _walker(steps[at])))
        saved = logs.step.get(host.name)
        logs.step[host.name] = -1  # what the walks log is not any step's output
        try:
            prefetch.judge(ahead)
        finally:
            logs.step[host.name] = saved if saved is not None else index
            logs.diffs.pop((host.name, -1), None)
            logs.errors.pop((host.name, -1), None)
    return prefetch.verdicts.get(index)


def _judge(state: State, host: Any, steps: tuple[PlannedStep, ...], result: HostResult, logs: Capture,
           on_result: OnResult | None, stop: Callable[[], bool]) -> None:
    """Check mode: add every operation (which reads facts) and report what would change."""
    notified, registered = Notified(), Registered()
    prefetch = Prefetch(state, host, executes=False)
    with ctx_host.use(host):
        for index, planned in enumerate(steps):
            step = planned.step
            if isinstance(step, Step) and step.handler and not notified.wants(planned):
                continue  # a handler no change notified: nothing to report
            if result.error or stop():
                result.error = STOPPED
                _skip(planned, result, True, on_result)
                continue
            logs.step[host.name] = index
            if isinstance(step, Sequence):
                with prefetch.reading():
                    _commands(host, planned, True, result, on_result)
                continue
            why, error = (step.skip, "") if step.skip else registered.blocked(step)
            if why or error:
                _not_run(planned, result, True, on_result, why, error, registered)
                continue
            if step.handler:
                notified.would_run(planned, result, on_result)
                continue
            verdict = _verdict(prefetch, host, steps, index, logs)
            if verdict is not None and not verdict.changes:  # converged: nothing to show
                _finish(planned, result, Status.OK, True, verdict.seconds, logs, host.name, index,
                        on_result)
                notified.add(planned, Status.OK)
                registered.add(step, result.ops[-1])
                continue
            started = time.monotonic()
            try:
                meta = _add(state, host, planned, judge_only=True)
                if state.config.DIFF and meta.will_change:
                    _drain(state, host)
                error = _fact_failure(state, host, logs, index)
                status = Status.FAILED if error else _status(planned, meta.will_change)
            except Exception as e:  # a wrong argument or impossible state, e.g. OperationError
                status, error = Status.FAILED, _describe(e, logs, host.name, index)
            _finish(planned, result, status, True, time.monotonic() - started, logs, host.name,
                    index, on_result, error=error)
            notified.add(planned, result.ops[-1].status)
            registered.add(step, result.ops[-1])


def _converge(state: State, host: Any, steps: tuple[PlannedStep, ...], result: HostResult, logs: Capture,
              on_result: OnResult | None, stop: Callable[[], bool]) -> None:
    """Apply: add and execute operations in order; a failure skips the rest of its policy."""
    notified, registered, prefetch = Notified(), Registered(), Prefetch(state, host)
    with ctx_host.use(host):
        failed_policies: set[str] = set()
        for index, planned in enumerate(steps):
            policy = planned.policy
            handler = isinstance(planned.step, Step) and planned.step.handler
            if handler and not notified.wants(planned):
                continue  # a handler no change notified: nothing to report
            if not result.unreachable and not result.error and stop():
                result.error = STOPPED
            # a notified handler runs even after a later task of its policy failed
            # (Ansible's force_handlers): the change that notified it is made
            if (policy.name in failed_policies and not handler) or result.unreachable \
                    or result.error:
                _skip(planned, result, False, on_result)
                continue
            if isinstance(planned.step, Step):
                step = planned.step
                why, error = (step.skip, "") if step.skip else registered.blocked(step)
                if why or error:
                    _not_run(planned, result, policy.mode == "audit", on_result, why, error,
                             registered)
                    if error:
                        failed_policies.add(policy.name)
                    continue
            if handler and policy.mode == "audit":
                notified.would_run(planned, result, on_result)
                continue
            logs.step[host.name] = index
            if isinstance(planned.step, Sequence):
                audit = policy.mode == "audit"
                with prefetch.reading() if audit else contextlib.nullcontext():
                    ops = _commands(host, planned, audit, result, on_result)
                if any(op.status is Status.FAILED for op in ops):
                    failed_policies.add(policy.name)
                    _lost(state, host, result)
                continue
            verdict = _verdict(prefetch, host, steps, index, logs)
            if verdict is not None and not verdict.changes:  # converged: pyinfra need not run it
                _finish(planned, result, Status.OK, policy.mode == "audit", verdict.seconds, logs,
                        host.name, index, on_result)
                notified.add(planned, Status.OK)
                registered.add(planned.step, result.ops[-1])
                continue
            started = time.monotonic()
            status, judged, error, meta = _apply_one(state, host, planned, logs, index)
            if not judged:  # it ran on the host: what was read may have changed
                prefetch.changed(status in (Status.CHANGED, Status.RAN, Status.FAILED))
            if status is Status.FAILED:
                failed_policies.add(policy.name)
                if _lost(state, host, result):
                    error = result.error
            _finish(planned, result, status, judged, time.monotonic() - started, logs, host.name,
                    index, on_result, error=error, meta=meta)
            notified.add(planned, status)
            registered.add(planned.step, result.ops[-1])


def _commands(host: Any, planned: PlannedStep, check: bool, result: HostResult,
              on_result: OnResult | None) -> list[OpResult]:
    """A kind's command sequence: run in one call, one result per command."""
    try:
        ops = sequence.run(host, planned, check)
    except Exception as e:  # the connection failed under the call
        ops = skipped(planned, check)
        ops[0].status, ops[0].error = Status.FAILED, f"{type(e).__name__}: {e}"
    assert isinstance(planned.step, Sequence)
    for command, op in zip(planned.step.commands, ops, strict=True):
        if command.login is not None and op.status is Status.CHANGED and not check:
            login.prove(host, command.login, op)
    for op in ops:
        result.ops.append(redact(op))
        if on_result is not None:
            on_result(result.host, op)
    return ops


def _lost(state: State, host: Any, result: HostResult) -> bool:
    """A failure that was the connection going away makes the host unreachable."""
    if _connected(host):
        return False
    result.unreachable = True
    result.error = f"connection lost (no answer within {state.config.CONNECT_TIMEOUT} s)"
    return True


def _apply_one(state: State, host: Any, planned: PlannedStep, logs: Capture, index: int
               ) -> tuple[Status, bool, str, OperationMeta | None]:
    audit = planned.policy.mode == "audit"
    try:
        meta = _add(state, host, planned, judge_only=audit)
        if audit:
            change = meta.will_change
            error = _fact_failure(state, host, logs, index)
            return (Status.FAILED if error else _status(planned, change)), True, error, None
        op_hash = host.op_hash_order[-1]
        ok = run_host_op(state, host, op_hash)
        error = _fact_failure(state, host, logs, index)
        if not ok or error:
            return Status.FAILED, False, error or logs.error(host.name, index), meta
        return _status(planned, meta.did_change()), False, "", meta
    except Exception as e:
        return Status.FAILED, False, _describe(e, logs, host.name, index), None


def _drain(state: State, host: Any) -> None:
    """Walk the operation's whole generator (commands are yielded, never run).

    Change detection stops at the first command, before operations such as files.put
    log their diff; walking on only reads facts.
    """
    op_data = state.get_op_data_for_host(host, host.op_hash_order[-1])
    for _command in op_data.command_generator():
        pass


def _status(planned: PlannedStep, changed: bool) -> Status:
    """ok, or (would have) changed; `ran` for a command that cannot know what it changed."""
    if not changed:
        return Status.OK
    return Status.CHANGED if _knows_change(planned) else Status.RAN


def _knows_change(planned: PlannedStep) -> bool:
    """Idempotent operations and guarded commands know whether they changed something."""
    step = planned.step
    assert isinstance(step, Step)
    return step.guard is not None or catalog.is_idempotent(step.operation)


def _fact_failure(state: State, host: Any, logs: Capture, index: int) -> str:
    """pyinfra marks a host failed when a fact command fails; undo that, report the step."""
    if host not in state.failed_hosts:
        return ""
    state.failed_hosts.discard(host)
    state.active_hosts.add(host)
    return logs.error(host.name, index) or "a fact command failed"


def _connected(host: Any) -> bool:
    client = getattr(host.connector, "client", None)
    if client is None:
        return True  # @local
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def _describe(e: Exception, logs: Capture, host: str, index: int) -> str:
    logged = logs.error(host, index)
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return f"{logged}\n{text}".strip() if logged else text


def _finish(planned: PlannedStep, result: HostResult, status: Status, judged: bool, duration: float,
            logs: Capture, host: str, index: int, on_result: OnResult | None,
            error: str = "", meta: OperationMeta | None = None) -> None:
    step = planned.step
    assert isinstance(step, Step)
    op = OpResult(
        policy=planned.policy.name, kind=planned.policy.kind, name=step.name,
        operation=step.operation, status=status, planned=judged, error=error,
        diff=logs.diff(host, index), duration=duration,
    )
    if meta is not None and meta.is_complete():
        op.stdout, op.stderr = meta.stdout, meta.stderr
    result.ops.append(redact(op, step.sensitive))
    if on_result is not None:
        on_result(host, op)


class Notified:
    """The handlers that steps which changed something (or would) notified on one host."""

    def __init__(self) -> None:
        self.by: dict[tuple[str, str], list[str]] = {}  # (policy, handler) -> notifying steps

    def add(self, planned: PlannedStep, status: Status) -> None:
        step = planned.step
        if isinstance(step, Step) and status in (Status.CHANGED, Status.RAN):
            for name in step.notify:
                self.by.setdefault((planned.policy.name, name), []).append(step.name)

    def wants(self, planned: PlannedStep) -> bool:
        step = planned.step
        return isinstance(step, Step) and (planned.policy.name, step.handler) in self.by

    def would_run(self, planned: PlannedStep, result: HostResult, on_result: OnResult | None
                  ) -> None:
        """Check mode (or an audit policy): a notified handler is reported, not judged."""
        step = planned.step
        assert isinstance(step, Step)
        by = self.by[(planned.policy.name, step.handler)]
        op = redact(OpResult(planned.policy.name, planned.policy.kind, step.name, step.operation,
                             Status.RAN, planned=True, diff=f"notified by {', '.join(by)}"))
        result.ops.append(op)
        if on_result is not None:
            on_result(result.host, op)


def skipped(planned: PlannedStep, judged: bool = False) -> list[OpResult]:
    """A step not attempted: one result, or one per command of a sequence."""
    step = planned.step
    names = ([(c.name, "command") for c in step.commands] if isinstance(step, Sequence)
             else [(step.name, step.operation)])
    return [redact(OpResult(planned.policy.name, planned.policy.kind, name, operation,
                            Status.SKIPPED, planned=judged)) for name, operation in names]


def _not_run(planned: PlannedStep, result: HostResult, judged: bool,
             on_result: OnResult | None, why: str, error: str, registered: Registered) -> None:
    """A step its `when:` skips (why), or whose `when:` could not be evaluated (error)."""
    step = planned.step
    assert isinstance(step, Step)
    (op,) = skipped(planned, judged)
    op.error = why or error
    if error:
        op.status = Status.FAILED
    result.ops.append(op)
    if on_result is not None:
        on_result(result.host, op)
    registered.add(step, op)


def _skip(planned: PlannedStep, result: HostResult, judged: bool, on_result: OnResult | None,
          why: str = "") -> None:
    for op in skipped(planned, judged):
        op.error = why
        result.ops.append(op)
        if on_result is not None:
            on_result(result.host, op)

