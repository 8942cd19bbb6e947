"""The only package that talks to pyinfra: build a State, add operations, run, collect results.

Importing this package imports no pyinfra; its modules do, when they are used.
"""
