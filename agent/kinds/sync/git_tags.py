"""The sync host program's tags: a tag one remote has is pushed to those that lack it; a tag
that points at different objects on different remotes is reported, or, with on_conflict:
priority, set everywhere to the first source remote's. A tag deleted on a remote is not
pushed there again."""

from __future__ import annotations

from agent.kinds.sync.git_repo import Data, notice, say, short

Updates = dict[str, list[tuple[str, str, str]]]  # remote: [(ref, old, new)]


def plan_tags(job: Data, up: list[str], sources: list[str], was: dict[str, dict[str, str]],
              now: dict[str, dict[str, str]], updates: Updates) -> dict[str, str]:
    """Each tag's state (in sync, pushed, kept, conflict); the pushes go into updates."""
    states: dict[str, str] = {}
    for tag in sorted({t for r in up for t in now[r]}):
        values = {r: now[r].get(tag, "") for r in up}
        deleted = [r for r in up if was[r].get(tag) and not values[r]]
        found = list(dict.fromkeys(values[r] for r in sources if r in up and values[r]))
        if not found:  # only on push_only remotes: theirs, not ours to spread
            states[tag] = "in sync"
            continue
        if len(found) > 1 and job["tags"]["on_conflict"] == "report":
            shown = ", ".join(f"{r} {short(values[r])}" for r in up if values[r])
            notice(f"tag conflict {tag}: {shown} (on_conflict: report: nothing pushed)")
            states[tag] = "conflict"
            continue
        target, state = found[0], "in sync"
        for r in up:
            if values[r] == target or r in deleted:
                continue
            if values[r] and job["tags"]["on_conflict"] == "report":  # a push_only's own
                notice(f"tag conflict {tag}: {r} has {short(values[r])}, the sources "
                       f"{short(target)} (on_conflict: report: not moved there)")
                state = "conflict"
                continue
            updates[r].append((f"refs/tags/{tag}", values[r], target))
            if state != "conflict":
                state = "moved" if values[r] else "pushed"
        if deleted:
            say(f"kept tag {tag}: deleted on {', '.join(deleted)}, kept on the others")
            state = "kept" if state == "in sync" else state
        states[tag] = state
    return states
