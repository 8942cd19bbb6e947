"""Playbooks: one-shot ordered procedures (restore, promote, rotate...) in YAML."""
