"""opsagent: a declarative ops agent converging hosts through pyinfra."""

__version__ = "0.1.0"
