"""The sync host program's branches: each branch's state across the remotes, and the
pushes it needs (fast-forward, the merge, a propagated deletion); what a remote dropped
kept in the mirror; the check that no commit any remote held is lost."""

from __future__ import annotations

from agent.kinds.sync.git_merge import merge
from agent.kinds.sync.git_repo import Data, Git, notice, say, short
from agent.kinds.sync.git_tags import Updates


def keep_dropped(git: Git, job: Data, up: list[str], was: dict[str, dict[str, str]],
                 now: dict[str, dict[str, str]], was_tags: dict[str, dict[str, str]],
                 now_tags: dict[str, dict[str, str]]) -> None:
    """What a remote dropped (a branch deleted or rewritten, a tag deleted or moved) stays
    reachable in the work mirror, under refs/opsagent/kept/RUN/REMOTE/."""
    kept = {f"refs/opsagent/kept/{job['run']}/{r}/heads/{b}": old
            for r in up for b, old in was[r].items()
            if b not in now[r] or not git.is_ancestor(old, now[r][b])}
    kept |= {f"refs/opsagent/kept/{job['run']}/{r}/tags/{t}": old
             for r in up for t, old in was_tags[r].items() if now_tags[r].get(t) != old}
    git.update_refs(kept)


def plan_branch(git: Git, job: Data, rule: Data, branch: str, up: list[str],
                sources: list[str], was: dict[str, dict[str, str]],
                now: dict[str, dict[str, str]], updates: Updates, conflicts: dict[str, Data]
                ) -> str:
    """The branch's state; the pushes it needs are added to updates, and a branch that
    needs a person to conflicts (with each remote's head and the conflicting files)."""
    heads = {r: now[r].get(branch) for r in up}
    rewritten = [r for r in up if was[r].get(branch) and heads[r]
                 and not git.is_ancestor(was[r][branch], heads[r] or "")]
    if rewritten:
        for r in rewritten:
            notice(f"rewritten {branch} on {r}: {short(was[r][branch])} was replaced by "
                   f"{short(heads[r] or '')}, not propagated (the old commits are kept)")
        return "rewritten"
    deleted = [r for r in up if was[r].get(branch) and not heads[r]]
    if deleted and job["deletions"] == "keep":
        say(f"kept {branch}: deleted on {', '.join(deleted)}, kept on the others")
    elif deleted:
        return delete_branch(git, branch, up, deleted, was, heads, updates)
    candidates = list(dict.fromkeys(h for r in sources if r in up for h in [heads[r]] if h))
    if not candidates:
        return "in sync" if not deleted else "deleted"
    target = next((c for c in candidates if all(git.is_ancestor(o, c) for o in candidates)),
                  None)
    state = "in sync"
    if target is None and rule["strategy"] == "merge":
        state, merged, files = merge(git, job, rule, branch, candidates)
        if not merged:
            conflicts[branch] = {"state": state, "files": files,
                                 "heads": {r: h for r, h in heads.items() if h}}
            return state
        target = merged
    elif target is None:
        shown_heads = ", ".join(f"{r} {short(heads[r] or '')}" for r in up if heads[r])
        notice(f"diverged {branch}: {shown_heads} (ff-only: nothing pushed)")
        conflicts[branch] = {"state": "diverged", "files": [],
                             "heads": {r: h for r, h in heads.items() if h}}
        return "diverged"
    for r in up:
        old = heads[r]
        if r in deleted or old == target:
            continue
        if old and not git.is_ancestor(old, target):
            notice(f"diverged {branch}: {r} has {short(old)}, not behind {short(target)} "
                   "(nothing pushed there)")
            state = "diverged"
            continue
        updates[r].append((f"refs/heads/{branch}", old or "", target))
        if state == "in sync":
            state = "fast-forward"
    return state


def delete_branch(git: Git, branch: str, up: list[str], deleted: list[str],
                  was: dict[str, dict[str, str]], heads: dict[str, str | None],
                  updates: Updates) -> str:
    """deletions: propagate: delete it where it did not move since the last run."""
    moved = [r for r in up if heads[r] and heads[r] != was[r].get(branch)]
    if moved:
        notice(f"diverged {branch}: deleted on {', '.join(deleted)} but changed on "
               f"{', '.join(moved)}, not propagated")
        return "diverged"
    for r in up:
        if heads[r]:
            updates[r].append((f"refs/heads/{branch}", heads[r] or "", ""))
    return "deleted"


def check_nothing_lost(git: Git, before: list[str]) -> int:
    """How many commits reachable from the heads before are reachable from no ref now."""
    if not before:
        return 0
    refs = git.refs("refs/opsagent")
    stdin = "".join(f"{sha}\n" for sha in dict.fromkeys(before))
    stdin += "".join(f"^{sha}\n" for sha in dict.fromkeys(refs.values()))
    done = git.run("rev-list", "--count", "--stdin", stdin=stdin)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else len(before)
