"""A blue-green deploy: the controller's waves as one wave of every host's idle slot.

The new release goes to each host's idle slot (PATH/slots/NAME) and is activated and
health-checked there, beside the live slot that still takes every request. When every
host passed, nginx moves all of them to their new slot in one graceful reload; the
analysis (if any) is measured then, and a failure or an abort moves nginx straight back
to the old slots, which are still running. After scale_down_delay the new slot is made
the active one on each host (current follows, the release is verified) and the old slot
is scaled down. Once it is, an emergency rollback (back()) starts the release to go
back to in the idle slot, checks it there and switches to it the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.core.plans import RunPlan
from agent.deploys import traffic
from agent.deploys.controller import Controller
from agent.kinds.deploy import plan as steps
from agent.state import deploys
from agent.waves import GO


@dataclass
class BlueGreenController(Controller):
    slots: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # host -> (new, live)
    switched: bool = False  # nginx sends traffic to the new slots

    def _release(self, name: str) -> list[Any]:
        return steps.release(self.spec(name), self._info(name), self.slots[name][0])

    def _port(self, host: str, slot: str | None) -> int:
        blue_green = self.spec(host).strategy.blue_green
        assert blue_green is not None
        return blue_green.slots[slot] if slot else 0

    def _servers(self) -> dict[str, tuple[str, str]]:
        out = {}
        for name in self.names:
            new, live = self.slots[name]
            slot = new if self.switched else live
            where = traffic.address(self._nginx(name), name).rsplit(":", 1)[0]
            out[name] = (f"{where}:{self._port(name, slot)}", "" if slot else "down")
        return out

    def before(self, number: int, hosts: list[str]) -> str:
        deploys.set_hosts(self.store, self.deploy.id, hosts, "updating")
        self._set(phase=f"starting {self.deploy.version} in the idle slots beside the live ones")
        return ""

    def after(self, number: int, healthy: list[str], failed: list[str]) -> None:
        deploys.set_hosts(self.store, self.deploy.id, healthy, "healthy", self.deploy.version)
        if failed:  # nothing of the new release takes traffic: the live slots go on
            deploys.set_hosts(self.store, self.deploy.id, failed, "failed",
                              detail="the new slot's release steps or health check failed")
            return
        self.switched = True
        if not self._traffic():
            self.switched = False
            deploys.set_hosts(self.store, self.deploy.id, healthy, "failed",
                              detail="nginx could not be switched to the new slots")
            return
        self._set(phase="switched: every host serves from its new slot")
        self.say("switched nginx to the new slots: "
                 + ", ".join(f"{n} {self.slots[n][0]}" for n in self.names))

    def rollback(self, hosts: list[str], to: str | None = None, failed: str | None = None) -> list[str]:
        """Back to the old slots: nginx first (instant), then each host's active slot."""
        if self.switched:
            self.switched = False
            if not self._traffic():
                self.switched = True
                return hosts
        back = [n for n in hosts if self.slots[n][1]]
        plans = tuple(self._host_plan(n, steps.promote(self.spec(n), self._info(n),
                                                       str(self.slots[n][1]), verified=False))
                      for n in back)
        result = self._run(RunPlan(plans, (self.ref,), self.plan.source), "rollback")
        bad = [h.host for h in result.hosts if h.failed] + [n for n in hosts if n not in back]
        for name in hosts:
            live = self.slots[name][1]
            if name in bad:
                deploys.set_hosts(self.store, self.deploy.id, [name], "rollback failed",
                                  detail="no live slot to go back to" if not live else "")
            else:
                deploys.set_hosts(self.store, self.deploy.id, [name], "rolled back",
                                  self._previous(name))
        self.say(f"rolled back to the old slots on {', '.join(n for n in hosts if n not in bad)}")
        return bad

    def back(self, targets: dict[str, str]) -> str:
        """Emergency rollback after scale-down: each host's target release (on the host
        already) into its idle slot, health-checked there, then nginx switched to the idle
        slots at once and they made the active ones; no analysis, no delay. A host that
        fails leaves every host on its live slot."""
        hosts = list(targets)
        deploys.set_hosts(self.store, self.deploy.id, hosts, "updating")
        self._set(status="progressing", phase="starting the releases to go back to in the idle slots")
        plans = tuple(self._host_plan(n, steps.back_in_slot(self.spec(n), self._info(n),
                                                            self.slots[n][0], targets[n]))
                      for n in hosts)
        result = self._run(RunPlan(plans, (self.ref,), self.plan.source), "rollback")
        healthy = self._health([h.host for h in result.hosts if not h.failed])
        bad = [n for n in hosts if n not in healthy]
        if not bad:
            self.switched = True
            if not self._traffic():
                self.switched, bad = False, hosts
        if bad:
            deploys.set_hosts(self.store, self.deploy.id, bad, "rollback failed",
                              detail="the release to go back to failed in the idle slot"
                              if len(bad) < len(hosts) or not healthy else "nginx could not switch")
            self._set(status="failed", finished=time.time(), error=f"could not roll back "
                      f"{', '.join(bad)}", phase="every host still serves from its live slot")
            return "failed"
        plans = tuple(self._host_plan(n, [*steps.promote(self.spec(n).model_copy(
            update={"version": targets[n]}), self._info(n), self.slots[n][0], verified=True),
            *steps.scale_down(self.spec(n), self._info(n))]) for n in hosts)
        unsettled = [h.host for h in self._run(RunPlan(plans, (self.ref,), self.plan.source),
                                               "rollback").hosts if h.failed]
        for name in hosts:
            deploys.set_hosts(self.store, self.deploy.id, [name], "rolled back", targets[name])
        outcome = "failed" if unsettled else "rolled back"
        self._set(status=outcome, finished=time.time(), phase="back on " + ", ".join(
            sorted(set(targets.values()))) + " in the other slots" + (
            f"; could not make it the active slot on {', '.join(unsettled)}" if unsettled else ""))
        self.event("rolled-back", hosts=hosts, failed_to_roll_back=unsettled)
        return outcome

    def _previous(self, name: str) -> str:
        return next((h.previous for h in deploys.hosts(self.store, self.deploy.id)
                     if h.host == name), "")

    def _settle(self) -> str:
        blue_green = self.spec().strategy.blue_green
        assert blue_green is not None
        if self._phases("failed"):
            return self.abort("rolled back", "the new slot failed on "
                               + ", ".join(self._phases("failed")))
        self._set(phase=f"keeping the old slots for {blue_green.scale_down_delay}s "
                  "(opsagent deploy abort switches back)")
        deadline = time.monotonic() + blue_green.scale_down_delay
        while time.monotonic() < deadline:
            verdict, why = self._sleep(1, min(1.0, max(0.0, deadline - time.monotonic())))
            if verdict != GO:
                return self.abort("aborted", why)
        plans = tuple(self._host_plan(n, [*steps.promote(self.spec(n), self._info(n),
                                                         self.slots[n][0], verified=True),
                                          *steps.scale_down(self.spec(n), self._info(n))])
                      for n in self.names)
        result = self._run(RunPlan(plans, (self.ref,), self.plan.source), "verify")
        bad = [h.host for h in result.hosts if h.failed]
        deploys.set_hosts(self.store, self.deploy.id, [n for n in self.names if n not in bad],
                          "verified", self.deploy.version)
        outcome = "failed" if bad else "succeeded"
        self._set(status=outcome, finished=time.time(), phase=f"{self.deploy.version} live in "
                  "the new slots" + (f"; could not settle {', '.join(bad)}" if bad else ""))
        self.say(f"deploy {self.ref.name} {self.deploy.version}: {outcome}")
        self.event(outcome, hosts=self.names)
        return outcome


def assign(spec_slots: dict[str, int], state: dict[str, Any]) -> tuple[str, str | None]:
    """(the slot to deploy to, the live one) from a host's release state."""
    names = list(spec_slots)
    live = state.get("active") if state.get("active") in names else None
    new = next(n for n in names if n != live)
    return new, live


def variables(spec_slots: dict[str, int], new: str, live: str | None) -> dict[str, Any]:
    return {"slot": new, "slot_port": spec_slots[new], "old_slot": live or "",
            "old_slot_port": spec_slots[live] if live else 0}
