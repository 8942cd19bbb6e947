"""The daemon's log: text on a terminal, JSON lines otherwise (journald, files, shippers).

Records may carry fields (policy, hosts, event, counts...) in `extra`; JSON lines keep
them as keys, text appends nothing (the message already says it). Either is scrubbed of
every secret this process knows (e.g. a pull token).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from agent.core.secrets import scrub

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


class Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup(fmt: str, level: int = logging.INFO) -> None:
    """fmt: auto | json | text."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if use_json else
                         Text("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("agent")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
