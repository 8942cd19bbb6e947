"""`opsagent deploy VERB POLICY`: a deploy policy's releases, in waves.

  opsagent deploy start shop-api --set release=1.4.2   deploy, in the foreground
  opsagent deploy status shop-api                      per host: version, phase; measurements
  opsagent deploy pause|resume|promote [--full]|abort shop-api
  opsagent deploy rollback shop-api [--to 1.4.1]       every host back, skipping analysis

One controller per policy at a time. pause, promote and abort are requests the running
controller obeys within an analysis interval; with no controller running (it was
killed), `resume` goes on from the last wave done and `abort` rolls back itself.
Exit 0 done, 1 bad input, 2 the deploy failed, was rolled back or is paused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from agent.cli.common import Parser, add_arguments, add_state_dir, inventory_of, load_plan, report_problems
from agent.core.plans import RunPlan
from agent.errors import Problem, Problems
from agent.kinds.deploy.spec import DeploySpec
from agent.state import deploys
from agent.state.locks import LockTimeout, deploy_lock, deploy_lock_path, holder
from agent.state.store import Store, state_dir

VERBS = {
    "start": "deploy the policy's version (--set release=1.4.2), in the foreground",
    "status": "the deploy: per host its version and phase, the last measurements",
    "pause": "ask the running deploy to wait after its current step",
    "resume": "go on with a paused deploy, or with one whose controller was killed",
    "promote": "skip the current pause or analysis (--full: every step left)",
    "abort": "roll back every host the deploy changed",
    "rollback": "every host of the policy back on its verified release (or --to), now",
}
DONE = {"succeeded": 0}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    directory = state_dir(args.state_dir)
    with Store(directory) as store:
        last = deploys.latest(store, args.name)
        if args.verb == "status":
            return _status(store, directory, args, last)
        alive = holder(deploy_lock_path(directory, args.name))
        if (args.verb == "rollback" and last is not None and last.status in deploys.OPEN
                and last.strategy == "blue-green"):
            if args.to:
                print(f"opsagent deploy: {args.name!r} {last.version} is {last.status}, its old "
                      "slots still running: abort it (instant), then rollback --to",
                      file=sys.stderr)
                return 1
            args.verb = "abort"  # its old slots still run: going back is switching back
        if args.verb in ("pause", "promote") or (args.verb in ("resume", "abort") and alive):
            if last is None or last.status not in deploys.OPEN:
                print(f"opsagent deploy: {args.name!r} has no deploy under way", file=sys.stderr)
                return 1
            request = "promote-full" if args.verb == "promote" and args.full else args.verb
            deploys.ask(store, last.id, request)
            print(f"deploy {args.name} {last.version}: {request} asked of "
                  f"{alive or 'the next controller (none runs now)'}")
            return 0
        if args.verb == "start" and last is not None and last.status in deploys.OPEN:
            print(f"opsagent deploy: {args.name!r} {last.version} is {last.status} "
                  f"({last.phase}); resume, abort or roll it back first", file=sys.stderr)
            return 1
        if args.verb == "resume" and (last is None or last.status not in deploys.OPEN):
            print(f"opsagent deploy: {args.name!r} has no deploy to resume", file=sys.stderr)
            return 1
        return _control(store, directory, args, last)


def _parser() -> Parser:
    parser = Parser(prog="opsagent deploy", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb, text in VERBS.items():
        sub = verbs.add_parser(verb, help=text, description=text)
        sub.add_argument("name", metavar="POLICY", help="the deploy policy's name")
        add_arguments(sub, selection=False)
        add_state_dir(sub)
        sub.add_argument("--timeout", type=int, default=10, help="connect timeout in seconds")
        sub.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                         help="a variable every host's policy sees (repeatable), e.g. release=1.4.2")
        if verb == "promote":
            sub.add_argument("--full", action="store_true", help="skip every step left: all "
                             "hosts now")
        if verb == "rollback":
            sub.add_argument("--to", metavar="VERSION", help="this release (default: each "
                             "host's last verified one)")
        if verb == "status":
            sub.add_argument("--json", action="store_true", help="print the state as JSON")
    return parser


def _variables(args: argparse.Namespace) -> dict[str, str]:
    found = {}
    for item in args.sets:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise Problems([Problem("--set", 0, 0, message=f"{item!r}: expected NAME=VALUE, "
                                    "e.g. release=1.4.2")])
        found[name] = value
    return found


def _control(store: Store, directory: Any, args: argparse.Namespace,
             last: deploys.Deploy | None) -> int:
    from agent.cli.apply import on_stop
    from agent.deploys import bluegreen
    from agent.deploys.controller import Controller
    from agent.deploys.events import Events

    try:
        variables = _variables(args)
        if args.verb == "resume" and last is not None:
            variables = {**last.vars, **variables}
        args.extra_vars, args.policy, args.limit = variables, [args.name], None
        plan = load_plan(args, read_facts=True)
        inventory, _ = inventory_of(args)
    except Problems as e:
        return report_problems(e)
    ref = next(p for p in plan.policies if p.name == args.name)
    if ref.kind != "deploy":
        print(f"opsagent deploy: policy {args.name!r} is a {ref.kind} policy, not deploy",
              file=sys.stderr)
        return 1
    spec = _spec(plan.hosts[0], ref.name)
    lb = None
    if spec.traffic is not None:
        lb = next((h for h in inventory.hosts if h.name == spec.traffic.nginx.host), None)
        if lb is None:
            print(f"opsagent deploy: spec.traffic.nginx.host {spec.traffic.nginx.host!r} is not "
                  f"in the inventory {plan.source}", file=sys.stderr)
            return 1
    if args.verb == "start":
        why = _artifact_problem(plan, ref.name)
        if why:
            print(f"opsagent deploy: {args.name}: {why}; nothing was changed", file=sys.stderr)
            return 1
    if args.verb == "start" and spec.promote_from is not None:
        source = spec.promote_from
        healthy = deploys.ran_healthy(store, source.policy, spec.version)
        if healthy < source.healthy_for:
            print(f"opsagent deploy: {spec.version} refused: promote_from wants it healthy in "
                  f"{source.policy!r} for {source.healthy_for}s, it was for {healthy:.0f}s "
                  f"(opsagent deploy status {source.policy})", file=sys.stderr)
            return 1
    stop = on_stop()
    try:
        with deploy_lock(directory, args.name, 0 if args.verb != "rollback" else 60):
            if args.verb == "rollback" and last is not None and last.status in deploys.OPEN:
                deploys.update(store, last.id, status="aborted", finished=time.time(),
                               phase="replaced by an emergency rollback")
            states = _survey(store, plan, ref.name)
            deploy, resumed = _deploy(store, args, plan, ref.name, spec, last, states)
            events = Events(spec.webhooks, {"policy": args.name, "deploy": deploy.id,
                                            "version": deploy.version}, _say)
            blue_green = spec.strategy.blue_green
            if blue_green is not None:
                ports = {hp.host.name: _spec(hp, ref.name).strategy.blue_green for hp in plan.hosts}
                slots = {n: bluegreen.assign(ports[n].slots, states.get(n, {}))  # type: ignore[union-attr]
                         for n in deploy.hosts}
                args.host_vars = {n: bluegreen.variables(ports[n].slots, *slot)  # type: ignore[union-attr]
                                  for n, slot in slots.items()}
                plan = load_plan(args, read_facts=True)
                controller: Controller = bluegreen.BlueGreenController(
                    store, plan, ref, lb, deploy, _say, stop.asked, connect_timeout=args.timeout,
                    events=events, slots=slots, switched=resumed and deploy.wave >= 1)
            else:
                controller = Controller(store, plan, ref, lb, deploy, _say, stop.asked,
                                        connect_timeout=args.timeout, events=events)
            if not resumed and args.verb == "start":
                events.send("started", hosts=deploy.hosts, strategy=deploy.strategy,
                            by=deploy.who)
            if args.verb == "rollback" and isinstance(controller, bluegreen.BlueGreenController):
                outcome = _back(controller, store, deploy, args.to, states)
            elif args.verb == "rollback":
                outcome = _rollback(controller, store, args, deploy)
            elif args.verb == "abort":
                outcome = controller.abort("aborted", "aborted with no controller running")
            else:
                if not resumed:
                    _say(f"deploy {args.name} {deploy.version} ({deploy.strategy}) on "
                         f"{', '.join(deploy.hosts)}")
                try:
                    outcome = controller.run()
                except Exception as e:  # noqa: BLE001 - said and recorded, never a traceback
                    deploys.update(store, deploy.id, status="failed", finished=time.time(),
                                   error=f"the controller failed: {e}",
                                   phase="failed: see error (opsagent deploy rollback puts "
                                   "every host back)")
                    print(f"opsagent deploy: the controller failed: {e}", file=sys.stderr)
                    outcome = "failed"
            events.close()
    except LockTimeout as e:
        print(f"opsagent deploy: {e}", file=sys.stderr)
        return 1
    _say(f"deploy {args.name}: {outcome} (opsagent deploy status {args.name})")
    return 0 if outcome in ("succeeded", "rolled back" if args.verb == "rollback" else "") else 2


def _artifact_problem(plan: RunPlan, policy: str) -> str:
    """Why a host's artifact cannot be used (its src missing), before anything starts."""
    from agent.kinds.deploy.plan import sha256

    for host_plan in plan.hosts:
        spec = _spec(host_plan, policy)
        try:
            sha256(spec)
        except OSError as e:
            return f"spec.artifact.src {spec.artifact.src}: {e.strerror or e}"
    return ""


def _spec(host_plan: Any, policy: str) -> DeploySpec:
    found = next(s for r, s in host_plan.specs if r.name == policy)
    assert isinstance(found, DeploySpec)
    return found


def _deploy(store: Store, args: argparse.Namespace, plan: RunPlan, name: str, spec: Any,
            last: deploys.Deploy | None, states: dict[str, dict[str, Any]]
            ) -> tuple[deploys.Deploy, bool]:
    """The deploy to go on with (resume, abort) or a new one (start, rollback)."""
    from agent.deploys.strategy import waves

    if args.verb in ("resume", "abort") and last is not None:
        return last, True
    hosts = [hp.host.name for hp in plan.hosts]
    previous = {h: str(states.get(h, {}).get("current") or "") for h in hosts}
    if args.verb == "rollback":
        version, strategy, count = args.to or "verified", "rollback", 1
    else:
        version, strategy = spec.version, spec.strategy.name
        rollout, _ = waves(spec, len(hosts), None)
        count = len(rollout.waves(hosts))
    deploy = deploys.begin(store, name, version, strategy, hosts, dict(args.extra_vars), count,
                           previous)
    return deploy, False


def _survey(store: Store, plan: RunPlan, name: str) -> dict[str, dict[str, Any]]:
    """Each host's release state, read (and recorded) before anything changes."""
    from agent.kinds.deploy.observe import state
    from agent.runs import run

    finished = run(plan, store, f"deploy {name} survey", check=False)
    return {h.host: state(h.ops) or {} for h in finished.result.hosts}


def _rollback(controller: Any, store: Store, args: argparse.Namespace, deploy: deploys.Deploy) -> str:
    """Every host of the policy back, skipping analysis: with traffic in two halves (so
    some hosts always serve), without it all at once."""
    hosts = list(deploy.hosts)
    halves = [hosts[:(len(hosts) + 1) // 2], hosts[(len(hosts) + 1) // 2:]] \
        if controller.spec().traffic is not None and len(hosts) > 1 else [hosts]
    bad: list[str] = []
    for half in halves:
        bad += controller.rollback(half, to=args.to, failed="")
    outcome = "rolled back" if not bad else "failed"
    deploys.update(store, deploy.id, status=outcome, finished=time.time(), wave=1,
                   phase=f"{'every host' if not bad else 'not ' + ', '.join(bad)} back on "
                   f"{args.to or 'its verified release'}")
    return outcome


def _back(controller: Any, store: Store, deploy: deploys.Deploy, to: str | None,
          states: dict[str, dict[str, Any]]) -> str:
    """A blue-green emergency rollback: the hosts not on `to` (or their verified release)."""
    targets = {n: to or str(states.get(n, {}).get("verified") or "") for n in deploy.hosts}
    missing = [n for n, t in targets.items() if not t]
    if missing:
        deploys.update(store, deploy.id, status="failed", finished=time.time(),
                       phase="nothing was changed", error="no verified release to roll back to "
                       f"on {', '.join(missing)} (give one with --to)")
        _say(f"no verified release to roll back to on {', '.join(missing)}: give one with --to")
        return "failed"
    moving = {n: t for n, t in targets.items() if states.get(n, {}).get("current") != t}
    if not moving:
        deploys.update(store, deploy.id, status="rolled back", finished=time.time(), wave=1,
                       phase="every host already serves the release to go back to")
        return "rolled back"
    return str(controller.back(moving))


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _status(store: Store, directory: Any, args: argparse.Namespace,
            last: deploys.Deploy | None) -> int:
    if last is None:
        print(f"opsagent deploy: {args.name!r} was never deployed", file=sys.stderr)
        return 1
    alive = holder(deploy_lock_path(directory, args.name))
    hosts = deploys.hosts(store, last.id)
    seen = deploys.measurements(store, last.id, 10)
    if args.json:
        print(json.dumps({"deploy": last.__dict__, "controller": alive,
                          "hosts": [h.__dict__ for h in hosts],
                          "measurements": [dict(zip(("at", "wave", "metric", "verdict", "value"), m,
                                                    strict=True)) for m in seen]}, indent=2))
        return 0
    print(f"deploy {last.policy} {last.version} ({last.strategy}, started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last.started))} by {last.who}): "
          f"{last.status}")
    print(f"  phase: {last.phase}; waves done: {last.wave} of {last.waves}")
    if last.status in deploys.OPEN:
        print(f"  controller: {alive or 'none running (opsagent deploy resume goes on)'}")
    if last.request:
        print(f"  asked: {last.request} by {last.requested_by}")
    if last.error:
        print(f"  error: {last.error}")
    print(f"  {'HOST':<16} {'VERSION':<14} {'WAS':<14} PHASE")
    for h in hosts:
        print(f"  {h.host:<16} {h.version or '-':<14} {h.previous or '-':<14} {h.phase}"
              + (f" ({h.detail})" if h.detail else ""))
    if seen:
        print("  last measurements:")
        for at, wave, metric, verdict, value in seen:
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in value.items())
            print(f"    {time.strftime('%H:%M:%S', time.localtime(at))} wave {wave} {metric}: "
                  f"{verdict} {shown}")
    return 0

