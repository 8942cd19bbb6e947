"""Deploys: the run service's work across hosts for a deploy policy (waves with a gate
for traffic, analysis and rollback; state step by step in the store; control by a
person). The deploy kind (agent/kinds/deploy) says what one host needs."""
