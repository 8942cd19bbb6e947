"""--limit patterns, as an Ansible user writes them."""

from __future__ import annotations

import pytest

from agent.patterns import PatternError, select

HOSTS = ["web1", "web2", "web10", "db1", "@local"]
GROUPS = {"web": ("web1", "web2", "web10"), "db": ("db1",), "eu": ("web2", "db1"),
          "all": tuple(HOSTS)}


@pytest.mark.parametrize("pattern, chosen", [
    ("web", ["web1", "web2", "web10"]),
    ("web1,db1", ["web1", "db1"]),
    ("web:db", ["web1", "web2", "web10", "db1"]),
    ("web:!web1", ["web2", "web10"]),
    ("web:&eu", ["web2"]),
    ("all:!web:!@local", ["db1"]),
    ("!db", ["web1", "web2", "web10", "@local"]),  # starting with !: from every host
    ("&eu", ["web2", "db1"]),
    ("web?", ["web1", "web2"]),  # globs match host and group names
    ("w*:!web1?", ["web1", "web2"]),
    ("~web\\d$", ["web1", "web2"]),
    ("@local", ["@local"]),
    ("web:&db", []),  # a valid pattern that selects nothing (build_plan says so)
])
def test_patterns(pattern: str, chosen: list[str]) -> None:
    assert select(pattern, HOSTS, GROUPS) == chosen


@pytest.mark.parametrize("pattern, error", [
    ("wbe", "no host or group 'wbe' in the inventory"),
    ("web:!nope", "no host or group 'nope' in the inventory"),
    ("x*", "'x*' matches no host or group in the inventory"),
    ("~(", "'~(': not a regular expression (missing ), unterminated subpattern at position 0)"),
    ("web,,db", "'web,,db': an empty term (write NAME, NAME:!NAME or NAME:&NAME)"),
    ("web:!", "'web:!': an empty term (write NAME, NAME:!NAME or NAME:&NAME)"),
])
def test_bad_patterns(pattern: str, error: str) -> None:
    with pytest.raises(PatternError) as e:
        select(pattern, HOSTS, GROUPS)
    assert str(e.value) == error
