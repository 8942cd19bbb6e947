"""The shared vocabulary at the bottom of opsagent: hosts, steps, commands, sequences,
guards, statuses, results, policy references, planned steps and secret references.

It imports nothing else of agent/ (tests/unit/test_layers.py holds this), so every layer
above (policy, engine, state, kinds, the run service, cli and daemon) can speak it.
"""
