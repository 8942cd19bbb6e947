"""opsagent: a declarative ops agent converging hosts through pyinfra."""

from agent import lazy

__version__ = "0.1.0"

lazy.install()
