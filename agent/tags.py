"""Which steps --tags and --skip-tags select, as Ansible does.

A step's tags are its own (a task's `tags:`) and its policy's (`tags:` beside `spec`).
With --tags, a step runs when it has one of them, or the tag `always`; `all` selects
every step, `tagged` those with any tag, `untagged` those with none. --skip-tags drops a
step that has one of its tags (`always` too, when named). A step tagged `never` runs
only when --tags names one of its tags (or `never`).
"""

from __future__ import annotations

from collections.abc import Collection

SPECIAL = ("all", "always", "never", "tagged", "untagged")


def selected(tags: Collection[str], only: Collection[str] | None,
             skip: Collection[str] | None) -> bool:
    have = set(tags)
    if skip and (have & set(skip) or ("tagged" in skip and have)
                 or ("untagged" in skip and not have)):
        return False
    if not only:
        return "never" not in have
    wanted = set(only)
    if have & (wanted - {"all", "tagged", "untagged"}):
        return True
    if "never" in have:
        return False
    return bool("always" in have or "all" in wanted or ("tagged" in wanted and have)
                or ("untagged" in wanted and not have))
