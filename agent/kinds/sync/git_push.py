"""The sync host program's pushes: each remote's updates in one atomic push leased on
what was fetched, after saving what it replaces (refs and a bundle); checked with
ls-remote; a ref whose push failed somewhere put back where it went; old snapshots
pruned."""

from __future__ import annotations

import os
import time

from agent.kinds.sync.git_repo import (
    Data,
    Git,
    last_line,
    listed_refs,
    notice,
    say,
    short,
    shown,
    tracking,
)
from agent.kinds.sync.git_tags import Updates


def push(git: Git, job: Data, urls: dict[str, str], updates: Updates,
         states: dict[str, str], all_or_none: bool = True) -> tuple[int, bool]:
    """Each remote's updates in one atomic push, leased on the refs fetched, after saving
    what it replaces under this run's backup refs (and what only they hold in a bundle).
    all_or_none: a ref whose push failed on one remote is put back on the remotes it
    reached (a rollback puts back what it can instead). (pushed, any failed)."""
    if not any(updates.values()):
        return 0, False
    for remote, changes in updates.items():
        for ref, old, new in changes:
            say(f"{'would ' + verb(git, ref, old, new) if job['check'] else past(git, ref, old, new)}"
                f" {shown(ref)} on {remote}: {span(old, new)}")
    if job["check"]:
        return 0, False
    say(f"replaced heads are saved as run {job['run']} (opsagent sync rollback POLICY "
        f"--run {job['run']} puts them back)")
    snapshot(git, job, updates)
    done = {remote: push_one(git, job, urls[remote], remote, changes, states)
            for remote, changes in updates.items() if changes}
    refused = {ref for remote, ok in done.items() if not ok and all_or_none
               for ref, _, _ in updates[remote]}
    undo = {remote: [(ref, new, old) for ref, old, new in updates[remote] if ref in refused]
            for remote, ok in done.items() if ok}
    for remote, changes in undo.items():
        if not changes:
            continue
        for ref, new, old in changes:
            say(f"rolled back {shown(ref)} on {remote}: {span(new, old)} (its push failed "
                "elsewhere: it moves on every remote or on none)")
        if not push_one(git, job, urls[remote], remote, changes, states):
            notice(f"could not roll back {remote}: run opsagent sync rollback POLICY --run "
                   f"{job['run']}")
    pushed = sum(len(updates[r]) - len(undo.get(r, [])) for r, ok in done.items() if ok)
    return pushed, not all(done.values())


def snapshot(git: Git, job: Data, updates: Updates) -> None:
    """Save the refs the pushes replace (backup/) and leave (pushed/, what a rollback
    expects there); bundle the commits only the replaced refs hold."""
    saved = {f"refs/opsagent/backup/{job['run']}/{r}/{ref[5:]}": old
             for r, changes in updates.items() for ref, old, _ in changes if old}
    git.update_refs(saved)
    git.update_refs({f"refs/opsagent/pushed/{job['run']}/{r}/{ref[5:]}": new
                     for r, changes in updates.items() for ref, _, new in changes if new})
    news = [f"^{new}" for changes in updates.values() for _, _, new in changes if new]
    only = git.run("rev-list", "--count", *saved, *news).stdout.strip()
    if not saved or only in ("", "0"):
        return  # fast-forwards only: every replaced commit stays on the remotes
    folder = os.path.join(job["workdir"], "bundles", job["repo"])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    made = git.run("bundle", "create", "--quiet", os.path.join(folder, f"{job['run']}.bundle"),
                   *saved, *news)
    if made.returncode != 0:
        notice(f"could not bundle the replaced heads: {last_line(made.stderr)} (they stay "
               f"under refs/opsagent/backup/{job['run']})")


def push_one(git: Git, job: Data, url: str, remote: str, changes: list[tuple[str, str, str]],
             states: dict[str, str]) -> bool:
    """One remote's changes in one atomic push leased on their old values, then checked
    with ls-remote; the mirror's tracking refs follow what is there."""
    args = ["push", "--atomic", "--porcelain", url]
    args += [f"--force-with-lease={ref}:{old}" for ref, old, _ in changes]
    args += [f"{new}:{ref}" if new else f":{ref}" for ref, _, new in changes]
    done = git.remote(*args)
    if done.returncode != 0:
        refused = [line.split("\t", 1)[1].replace("\t", " ") for line in done.stdout.splitlines()
                   if line.startswith("!\t") and "\t" in line[2:]]
        notice(f"push to {remote} failed, nothing changed there: "
               f"{'; '.join(refused) or last_line(done.stderr or done.stdout)}"
               + (" (it moved since the fetch: the lease refused it)"
                  if any("stale info" in r for r in refused) else ""))
        for ref, _, _ in changes:
            failed(states, ref)
        return False
    check = git.remote("ls-remote", url, *(ref for ref, _, _ in changes))
    there = listed_refs(check.stdout)
    ok = check.returncode == 0
    for ref, _, new in changes:
        if check.returncode != 0 or there.get(ref, "") != new:
            ok = failed(states, ref)
            notice(f"after the push, {remote} has {shown(ref)} at "
                   f"{short(there.get(ref, '')) or 'nothing'}, not {short(new) or 'nothing'}")
        git.update_refs({tracking(remote, ref): there.get(ref, "")})
        git.update_refs({f"refs/opsagent/pushed/{job['run']}/{remote}/{ref[5:]}": there.get(ref, "")})
    return ok


def failed(states: dict[str, str], ref: str) -> bool:
    """Mark a branch whose push failed (a tag's failure is in the notices); False."""
    if ref.startswith("refs/heads/"):
        states[shown(ref)] = "failed"
    return False


def prune(git: Git, job: Data) -> None:
    """Drop the saved refs and bundles of runs older than keep_snapshots, never the
    newest run's (run names are their UTC start times)."""
    saved = [f"refs/opsagent/{kind}/{name}" for kind in ("backup", "kept", "pushed")
             for name in git.refs(f"refs/opsagent/{kind}")]
    runs = sorted({name.split("/")[3] for name in saved})
    limit = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - job["keep_snapshots"]))
    old = [run for run in runs[:-1] if run < limit]
    if not old:
        return
    git.update_refs({name: "" for name in saved if name.split("/")[3] in old})
    for run in old:
        bundle = os.path.join(job["workdir"], "bundles", job["repo"], f"{run}.bundle")
        if os.path.exists(bundle):
            os.unlink(bundle)
    say(f"pruned the snapshots of {len(old)} run(s) older than {job['keep_snapshots']}s")


def verb(git: Git, ref: str, old: str, new: str) -> str:
    if ref.startswith("refs/tags/"):
        return "delete" if not new else ("move" if old else "push")
    return "delete" if not new else (
        "fast-forward" if not old or git.is_ancestor(old, new) else "put back")


def past(git: Git, ref: str, old: str, new: str) -> str:
    return {"delete": "deleted", "fast-forward": "fast-forwarded", "put back": "put back",
            "move": "moved", "push": "pushed"}[verb(git, ref, old, new)]


def span(old: str, new: str) -> str:
    return f"{short(old)}..{short(new)}" if old and new else short(old or new)
