"""Policies: load YAML with positions, validate the envelope and each kind's spec, render per host."""
