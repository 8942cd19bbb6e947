"""Compliance and run reports: what the store knows over a period, as HTML, JSON or JUnit."""
