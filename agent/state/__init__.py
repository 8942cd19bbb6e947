"""Run history and the audit log in SQLite: what happened, kept for later questions."""
