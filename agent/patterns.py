"""Host patterns, as Ansible's --limit takes them.

    web                 a group or a host
    web,db  web:db      either (union)
    web:!h1             web, but not h1 (exclusion)
    web:&eu             in web and in eu (intersection)
    h*  web-[0-9]       globs over host and group names
    ~web\\d+             a regular expression (re.match) over host and group names

Terms are read in order of kind, as Ansible does: the union of the plain ones (all hosts
when the pattern starts with ! or &), then each & intersects, then each ! removes.
A term that matches no host or group is an error, not an empty selection.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

_GLOB = re.compile(r"[*?\[]")


class PatternError(ValueError):
    pass


def select(pattern: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The host names the pattern selects, in inventory order; raises PatternError."""
    terms = [t.strip() for t in re.split(r"[,:]", pattern)]
    if not pattern.strip() or any(not t or t in ("!", "&") for t in terms):
        raise PatternError(f"{pattern!r}: an empty term (write NAME, NAME:!NAME or NAME:&NAME)")
    plain = [t for t in terms if t[0] not in "!&"]
    chosen = set().union(*(_match(t, hosts, groups) for t in plain)) if plain else set(hosts)
    for term in terms:
        if term[0] == "&":
            chosen &= _match(term[1:], hosts, groups)
        elif term[0] == "!":
            chosen -= _match(term[1:], hosts, groups)
    return [h for h in hosts if h in chosen]


def _match(term: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    if term.startswith("~"):
        try:
            expression = re.compile(term[1:])
        except re.error as e:
            raise PatternError(f"{term!r}: not a regular expression ({e})") from None
        names = [n for n in (*hosts, *groups) if expression.match(n)]
    elif _GLOB.search(term):
        names = [n for n in (*hosts, *groups) if fnmatch.fnmatchcase(n, term)]
    else:
        names = [term] if term in groups or term in hosts else []
    if not names:
        if term.startswith("~") or _GLOB.search(term):
            raise PatternError(f"{term!r} matches no host or group in the inventory")
        raise PatternError(f"no host or group {term!r} in the inventory")
    found: set[str] = set()
    for name in names:
        found.update(groups.get(name, (name,)))
    return found
