"""A warm server for one-shot commands (`opsagent warm`) and the client that hands a
command to it (client.py, used by the CLI before anything heavy is imported)."""
