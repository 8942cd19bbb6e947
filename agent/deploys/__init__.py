"""Deploys: the run service's work across hosts for a deploy policy; the deploy kind
(agent/kinds/deploy) says what one host needs.

controller.py is the gate of the waves (agent/waves.py) for rolling and canary deploys:
drain, traffic back, rollback, analysis and pauses, a person's requests, the deploy's
state step by step in the store (agent/state/deploys.py); bluegreen.py the same for two
slots per host; strategy.py a strategy as waves; traffic.py the nginx upstream;
analysis.py the measurements; events.py the signed webhooks; metrics.py the families.
"""
