"""The facts a host's operations need, read in one remote call per round, so that a
converged host costs a few round trips instead of one or two per operation.

pyinfra reads each fact with its own command when an operation asks for it. Here the
steps ahead are first walked without running anything (their operation generators,
with the facts read so far): each stops at the first fact not yet read, and those facts'
commands go to the host together, run there by one small program (fact_reader.py,
which answers file facts without starting a process when it can). A few rounds
and every step is judged: converged (its generator yields no command: reported ok
without pyinfra), or it will change something (handed to pyinfra as before, its facts
answered from what was read, so its result, diff and output are what they always were).

The facts read describe the host as it was. They answer only until a command that is
not a fact runs or a file is put there (anything may have changed): then every fact is
read afresh, and the steps after are judged by a new round, once one step has run the
way pyinfra runs it and changed nothing (a run that changes one thing, the first run
above all, often changes the next: its round would be lost). A step that cannot be
judged this way keeps today's path (catalog.BATCHED says which: a step with global
arguments; a kind's command sequence, already one call).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api import StringCommand
from pyinfra.connectors.util import CommandOutput, OutputLine, make_unix_command_for_host

from agent.engine import native

# As sequence.LAUNCH: the reader's source, then the job, on stdin; -S: the reader needs
# nothing from site-packages, and Python starts 5 ms sooner without them.
LAUNCH = "python3 -S -c 'import json,sys;exec(json.loads(sys.stdin.readline()))'"
ROUNDS = 6  # an operation reading more facts one after another than this keeps today's path
# A fact read with any of these set is read as pyinfra reads it (a password, a pty, a
# timeout or retries of its own): only how the command is written may differ.
LIVE_ARGUMENTS = ("_sudo", "_sudo_user", "_use_sudo_login", "_sudo_password", "_su_user",
                  "_use_su_login", "_su_password", "_su_shell", "_doas", "_doas_user", "_dzdo",
                  "_dzdo_user", "_get_pty", "_stdin", "_timeout", "_retries")

Key = tuple[str, str]


class NeedFact(Exception):
    """A fact not read yet, while judging: the walk of this step stops here."""


@dataclass
class Verdict:
    changes: bool  # the generator yields a command
    seconds: float  # its share of the rounds' time


class Prefetch:
    """One host's facts read in batches; installed on the pyinfra host for the run."""

    def __init__(self, state: Any, host: Any, executes: bool = True) -> None:
        self.state, self.host = state, host
        self.executes = executes  # False in check mode: no step changes what is read
        self.real_fact = host.get_fact
        self.real_run = host.run_shell_command
        self.real_put = host.put_file
        self.cache: dict[Key, tuple[bool, CommandOutput]] = {}
        self.facts: dict[str, Any] = {}  # while judging: each fact's value, as pyinfra made it
        self.verdicts: dict[int, Verdict] = {}
        # the next round's requests: a fact's command line, or it and a native way to it
        self.wanted: dict[Key, str | dict[str, Any]] = {}
        self.asking: tuple[Any, tuple[Any, ...], dict[str, Any]] | None = None  # the fact read
        self.waited: dict[int, float] = {}  # step index -> seconds of rounds it waited on
        self.depth = 0  # inside host.get_fact: commands are fact reads
        self.judging = False
        self.quiet = 0  # inside reading(): commands known to change nothing
        self.works = True  # False once the host could not run the reader (no python3)
        self.paused = False  # the last step changed something: the next is not judged
        host.get_fact = self._get_fact
        host.run_shell_command = self._run
        host.put_file = self._put

    # -- what pyinfra calls ---------------------------------------------------------------

    def _get_fact(self, cls: Any, *args: Any, **kwargs: Any) -> Any:
        key = None
        if self.judging and not any(k.startswith("_") for k in kwargs):
            key = _fact_key(cls, args, kwargs)  # outside any operation: default arguments
            if key is not None and key in self.facts:
                return copy.deepcopy(self.facts[key])
        self.depth += 1
        asking, self.asking = self.asking, (cls, args, kwargs)
        try:
            value = self.real_fact(cls, *args, **kwargs)
        finally:
            self.depth -= 1
            self.asking = asking
        if key is not None and self.host not in self.state.failed_hosts:
            self.facts[key] = copy.deepcopy(value)
        return value

    def _run(self, command: Any, *args: Any, **kwargs: Any) -> tuple[bool, CommandOutput]:
        if not self.depth:  # an operation's own command: the host may change
            if not self.quiet:
                self.forget()
            return self.real_run(command, *args, **kwargs)  # type: ignore[no-any-return]
        key = _key(command, kwargs)
        if key is not None and key in self.cache:
            return self.cache[key]
        if self.judging:
            if key is None:  # read as pyinfra reads it: then judged from it
                return self.real_run(command, *args, **kwargs)  # type: ignore[no-any-return]
            unix = self._unix(command, kwargs)
            way = native.request(self.asking, key[1])
            self.wanted[key] = unix if way is None else {"command": unix, **way}
            raise NeedFact(key[0])
        return self.real_run(command, *args, **kwargs)  # type: ignore[no-any-return]

    def _put(self, *args: Any, **kwargs: Any) -> bool:
        self.forget()
        return bool(self.real_put(*args, **kwargs))

    # -- the engine's side ----------------------------------------------------------------

    def forget(self) -> None:
        """The host may have changed: what was read no longer answers."""
        self.cache.clear()
        self.facts.clear()
        self.verdicts.clear()

    def changed(self, changed: bool) -> None:
        """A step ran the way pyinfra runs it: after a change, the next step does too (a
        run that changes one thing often changes the next: a round would be lost), and
        judging in rounds resumes after a step that changed nothing."""
        self.forget()
        self.paused = changed

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Commands run inside change nothing (a check-mode sequence)."""
        self.quiet += 1
        try:
            yield
        finally:
            self.quiet -= 1

    def ready(self) -> bool:
        """Whether steps are judged in rounds now (see changed())."""
        return self.works and not self.paused

    def judge(self, ahead: list[tuple[int, Callable[[], Any] | None]]) -> None:
        """Judge the steps ahead (index, a function returning its operation generator, or
        None for a step that cannot be judged and ends the look ahead) in rounds: their
        verdicts land in self.verdicts."""
        unknown: set[int] = set()
        for _ in range(ROUNDS):
            self.wanted = {}
            needs: dict[int, set[Key]] = {}
            for index, walk in ahead:
                if walk is None or index in unknown:
                    break
                verdict = self.verdicts.get(index) or self._walk(index, walk, needs, unknown)
                if index in unknown or (verdict is not None and verdict.changes and
                                        self.executes):
                    break  # past a change (or what may be one), what was read says nothing
            if not self.wanted:
                return
            started = time.monotonic()
            if not self._read():
                return
            share = (time.monotonic() - started) / len(self.wanted)
            for index, keys in needs.items():
                self.waited[index] = self.waited.get(index, 0.0) + share * len(keys)

    def _walk(self, index: int, walk: Callable[[], Any], needs: dict[int, set[Key]],
              unknown: set[int]) -> Verdict | None:
        before = set(self.wanted)
        started = time.monotonic()
        self.judging = True
        try:
            changes = next(iter(walk()), None) is not None
        except NeedFact:
            needs[index] = set(self.wanted) - before
            return None
        except Exception:  # judged by pyinfra itself, which reports it
            unknown.add(index)
            return None
        finally:
            self.judging = False
            if self.host in self.state.failed_hosts:  # a fact that failed: pyinfra says so
                self.state.failed_hosts.discard(self.host)
                self.state.active_hosts.add(self.host)
                unknown.add(index)
        if index in unknown:
            return None
        verdict = Verdict(changes, self.waited.pop(index, 0.0) + time.monotonic() - started)
        self.verdicts[index] = verdict
        return verdict

    def _read(self) -> bool:
        """The wanted facts' commands, run on the host in one call."""
        keys = list(self.wanted)
        job = json.dumps(_reader()) + "\n" + json.dumps(list(self.wanted.values())) + "\n"
        self.depth += 1  # a fact read, for _run
        self.judging = False
        try:
            ok, output = self.real_run(StringCommand(LAUNCH), _stdin=job, print_output=False,
                                       print_input=False)
        finally:
            self.depth -= 1
        answers = []
        for line in output.stdout_lines:
            try:
                answers.append(json.loads(line))
            except ValueError:
                continue
        if not ok or len(answers) != len(keys):
            self.works = False  # e.g. no python3 there: pyinfra reads each fact itself
            return False
        for key, answer in zip(keys, answers, strict=True):
            if not answer.get("undecodable"):  # pyinfra reads it and fails as it does
                self.cache[key] = _output(answer, json.loads(key[1])["_success_exit_codes"])
            request = self.wanted[key]
            if "sha1" in answer and isinstance(request, dict):  # the Sha1File files.put
                path = request["stat"]  # reads next, as sha1sum prints it
                self.cache.setdefault((native.sha1_command(path), key[1]), _output(
                    {"rc": 0, "stdout": f"{answer['sha1']}  {path}\n", "stderr": ""}, None))
        return True

    def _unix(self, command: Any, kwargs: dict[str, Any]) -> str:
        arguments = {k: v for k, v in kwargs.items() if k not in (  # as the connectors do
            "print_output", "print_input", "_get_pty", "_timeout", "_stdin", "_success_exit_codes")}
        unix = make_unix_command_for_host(self.state, self.host, command, **arguments)
        return str(unix.get_raw_value())


@cache
def _reader() -> str:
    return Path(__file__).with_name("fact_reader.py").read_text(encoding="utf-8")


def _fact_key(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        return json.dumps([cls.__module__, cls.__qualname__, args, kwargs], sort_keys=True)
    except (TypeError, ValueError):  # an argument JSON cannot hold: read it as pyinfra does
        return None


def _key(command: Any, kwargs: dict[str, Any]) -> Key | None:
    """The fact command's text and how it is run; None when it cannot be read in a batch."""
    if any(kwargs.get(name) for name in LIVE_ARGUMENTS):
        return None
    shaping = {k: kwargs.get(k) for k in ("_shell_executable", "_chdir", "_env",
                                          "_success_exit_codes")}
    text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
    return str(text), json.dumps(shaping, sort_keys=True, default=str)


def _output(answer: dict[str, Any], codes: list[int] | None) -> tuple[bool, CommandOutput]:
    """As pyinfra's connectors give it: lines split at newlines, without them."""
    lines = [OutputLine("stdout", line) for line in _lines(answer["stdout"])]
    lines += [OutputLine("stderr", line) for line in _lines(answer["stderr"])]
    return (answer["rc"] in codes if codes else answer["rc"] == 0), CommandOutput(lines)


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return parts
