"""Keeps one repository's branches in step across its remotes; the sync kind runs it on the host.

Standard library and git only (it is sent to the host; nothing of opsagent is there).
argv[1] is JSON: {repo, workdir, remotes: [{name, url, push_only}], rules: [{match,
strategy}], deletions, check, run}. The key for SSH remotes, if any, arrives in the
environment (OPSAGENT_SYNC_SSH_KEY), never on a command line.

In a bare work mirror (WORKDIR/REPO.git) each remote's branches are fetched under
refs/opsagent/remotes/REMOTE/. For each branch: in step; behind somewhere (fast-forward
those remotes, each remote's updates in one atomic push leased on the head fetched, so
a push that raced a developer is refused, not overwritten); diverged (reported, never
forced); rewritten or deleted on a remote (not propagated; the commits it dropped are
kept under refs/opsagent/kept/RUN/...). Before a push, the heads it replaces are saved
under refs/opsagent/backup/RUN/REMOTE/heads/...; after it, each remote is asked again
for its heads. Last, every commit any remote held is checked to be still reachable from
a remote's head or a kept or backup ref: if not, the run fails saying so.

Prints one line per branch, then `SUMMARY {json}`. Exit 0: every branch in step; 2:
done, but a remote could not be reached (degraded); 1: a branch needs a person, a push
failed, or a commit would be lost.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any

REMOTES = "refs/opsagent/remotes"
Data = dict[str, Any]
NOTICES: list[str] = []  # the lines that need a person: written to stderr at the end


def notice(line: str) -> None:
    NOTICES.append(line)


class Git:
    def __init__(self, mirror: str, env: dict[str, str]) -> None:
        self.mirror, self.env = mirror, env

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", self.mirror, *args], input=stdin, env=self.env,
                              capture_output=True, text=True, check=False)

    def refs(self, prefix: str) -> dict[str, str]:
        done = self.run("for-each-ref", "--format=%(refname) %(objectname)", prefix + "/")
        return {name[len(prefix) + 1:]: sha for name, sha in
                (line.split() for line in done.stdout.splitlines() if line.strip())}

    def is_ancestor(self, old: str, new: str) -> bool:
        return old == new or self.run("merge-base", "--is-ancestor", old, new).returncode == 0

    def update_refs(self, refs: dict[str, str]) -> None:
        if refs:
            lines = "".join(f"update {name} {sha}\n" for name, sha in refs.items())
            self.run("update-ref", "--stdin", stdin=lines)


def main(job: Data) -> int:
    env = {k: v for k, v in os.environ.items() if k != "OPSAGENT_SYNC_SSH_KEY"}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    key = os.environ.get("OPSAGENT_SYNC_SSH_KEY")
    with tempfile.TemporaryDirectory(prefix="opsagent-sync-") as tmp:
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=10",
               "-o", "ServerAliveCountMax=3"]
        if key:
            path = os.path.join(tmp, "key")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(key.rstrip("\n") + "\n")
            ssh += ["-i", path, "-o", "IdentitiesOnly=yes"]
        if job.get("known_hosts"):
            ssh += ["-o", f"UserKnownHostsFile={job['known_hosts']}",
                    "-o", "StrictHostKeyChecking=yes"]
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(part) for part in ssh)
        return rollback(job, env) if job.get("rollback") else sync(job, env)


def rollback(job: Data, env: dict[str, str]) -> int:
    """Put back the heads run job["rollback"] replaced, where they are as it left them."""
    mirror = mirror_of(job)
    if not os.path.isdir(mirror):
        notice(f"no work mirror {mirror}: is {job['repo']} one of the policy's repositories, "
               "synced on this host?")
        sys.stderr.write(NOTICES[-1] + "\n")
        return 1
    git = Git(mirror, env)
    urls = urls_of(job)
    saved = git.refs(f"refs/opsagent/backup/{job['rollback']}")  # what the run replaced
    pushed = git.refs(f"refs/opsagent/pushed/{job['rollback']}")  # what it put there
    updates: dict[str, list[tuple[str, str, str]]] = {}
    wanted = sorted(set(saved) | set(pushed))
    for name in wanted:
        remote, _, branch = name.partition("/heads/")
        if remote not in urls:
            notice(f"remote {remote} is no longer in the policy: {branch} not put back there")
            continue
        old, left = saved.get(name, ""), pushed.get(name, "")
        seen = git.refs(f"{REMOTES}/{remote}").get(branch, "")
        if seen != left:  # moved since that run: putting it back would undo someone's work
            notice(f"{branch} on {remote} moved since run {job['rollback']} (now "
                   f"{short(seen) or 'deleted'}, the run left {short(left) or 'nothing'}): "
                   "not put back")
            continue
        updates.setdefault(remote, []).append((branch, left, old))
    if not wanted:
        print(f"run {job['rollback']} changed no head of {job['repo']}: nothing to put back")
    states: dict[str, str] = {}
    count, failed = push(git, job, urls, updates, states)
    summary = {"branches": states, "down": {}, "pushed": count, "lost": 0}
    report(summary)
    return 1 if failed or NOTICES else 0


def sync(job: Data, env: dict[str, str]) -> int:
    os.makedirs(job["workdir"], mode=0o700, exist_ok=True)
    mirror = mirror_of(job)
    if not os.path.isdir(mirror):
        made = subprocess.run(["git", "init", "--bare", "--quiet", mirror], env=env,
                              capture_output=True, text=True, check=False)
        if made.returncode != 0:
            notice(f"cannot make the work mirror {mirror}: {made.stderr.strip()}")
            sys.stderr.write(NOTICES[-1] + "\n")
            return 1
    git = Git(mirror, env)
    urls = urls_of(job)
    sources = [r["name"] for r in job["remotes"] if not r["push_only"]]
    was = {name: git.refs(f"{REMOTES}/{name}") for name in urls}
    down: dict[str, str] = {}
    for name, url in urls.items():
        done = git.run("fetch", "--prune", "--no-tags", "--quiet", url,
                       f"+refs/heads/*:{REMOTES}/{name}/*")
        if done.returncode != 0:
            down[name] = first_line(done.stderr)
            notice(f"unreachable {name}: {down[name]}")
    now = {name: git.refs(f"{REMOTES}/{name}") for name in urls}
    up = [name for name in urls if name not in down]
    kept = {f"refs/opsagent/kept/{job['run']}/{r}/heads/{b}": old
            for r in up for b, old in was[r].items()
            if b not in now[r] or not git.is_ancestor(old, now[r][b])}
    git.update_refs(kept)  # what a remote dropped (deleted, rewritten) stays reachable here
    states: dict[str, str] = {}
    updates: dict[str, list[tuple[str, str, str]]] = {name: [] for name in up}
    for branch in sorted({b for r in up for b in (*now[r], *was[r])}):
        rule = next((r for r in job["rules"] if fnmatch.fnmatchcase(branch, r["match"])), None)
        if rule is None:
            states[branch] = "ignored"
            continue
        states[branch] = plan_branch(git, job, branch, up, sources, was, now, updates)
    pushed, failed = push(git, job, urls, updates, states)
    lost = check_nothing_lost(git, [sha for refs in (*was.values(), *now.values())
                                    for sha in refs.values()])
    if lost:
        notice(f"LOST {lost} commit(s): not reachable from any remote head or kept ref")
    summary = {"branches": states, "down": down, "pushed": pushed, "lost": lost}
    report(summary)
    if lost or failed or any(s in ("diverged", "rewritten", "failed") for s in states.values()):
        return 1
    return 2 if down else 0


def mirror_of(job: Data) -> str:
    return os.path.join(str(job["workdir"]), f"{job['repo']}.git")


def urls_of(job: Data) -> dict[str, str]:
    return {r["name"]: r["url"].replace("{repo}", job["repo"]) for r in job["remotes"]}


def report(summary: Data) -> None:
    """The SUMMARY line (what observe reads), and on stderr the lines that need a person
    (what the error or warning says)."""
    print("SUMMARY " + json.dumps(summary, sort_keys=True))
    sys.stderr.write("".join(f"{line}\n" for line in NOTICES))


def plan_branch(git: Git, job: Data, branch: str, up: list[str], sources: list[str],
                was: dict[str, dict[str, str]], now: dict[str, dict[str, str]],
                updates: dict[str, list[tuple[str, str, str]]]) -> str:
    """The branch's state; the pushes it needs are added to updates."""
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
        print(f"kept {branch}: deleted on {', '.join(deleted)}, kept on the others")
    elif deleted:
        return delete_branch(git, branch, up, deleted, was, heads, updates)
    candidates = list(dict.fromkeys(h for r in sources if r in up for h in [heads[r]] if h))
    if not candidates:
        return "in sync" if not deleted else "deleted"
    target = next((c for c in candidates if all(git.is_ancestor(o, c) for o in candidates)),
                  None)
    if target is None:
        shown = ", ".join(f"{r} {short(heads[r] or '')}" for r in up if heads[r])
        notice(f"diverged {branch}: {shown} (ff-only: nothing pushed)")
        return "diverged"
    state = "in sync"
    for r in up:
        old = heads[r]
        if r in deleted or old == target:
            continue
        if old and not git.is_ancestor(old, target):
            notice(f"diverged {branch}: {r} has {short(old)}, not behind {short(target)} "
                  "(ff-only: nothing pushed there)")
            state = "diverged"
            continue
        updates[r].append((branch, old or "", target))
        if state == "in sync":
            state = "fast-forward"
    return state


def delete_branch(git: Git, branch: str, up: list[str], deleted: list[str],
                  was: dict[str, dict[str, str]], heads: dict[str, str | None],
                  updates: dict[str, list[tuple[str, str, str]]]) -> str:
    """deletions: propagate: delete it where it did not move since the last run."""
    moved = [r for r in up if heads[r] and heads[r] != was[r].get(branch)]
    if moved:
        notice(f"diverged {branch}: deleted on {', '.join(deleted)} but changed on "
              f"{', '.join(moved)}, not propagated")
        return "diverged"
    for r in up:
        if heads[r]:
            updates[r].append((branch, heads[r] or "", ""))
    return "deleted"


def push(git: Git, job: Data, urls: dict[str, str], updates: dict[str, list[tuple[str, str, str]]],
         states: dict[str, str]) -> tuple[int, bool]:
    """Each remote's updates in one atomic push, leased on the heads fetched, after saving
    the heads it replaces under this run's backup refs; (pushed, any failed)."""
    pushed, failed = 0, False
    if any(updates.values()) and not job["check"]:
        print(f"replaced heads are saved as run {job['run']} (opsagent sync rollback POLICY "
              f"--run {job['run']} puts them back)")
    for remote, changes in updates.items():
        if not changes:
            continue
        for branch, old, new in changes:
            what = "delete" if not new else (
                "fast-forward" if not old or git.is_ancestor(old, new) else "put back")
            span = f"{short(old)}..{short(new)}" if old and new else short(old or new)
            print(f"{'would ' + what if job['check'] else past(what)} {branch} on {remote}: {span}")
        if job["check"]:
            continue
        git.update_refs({f"refs/opsagent/backup/{job['run']}/{remote}/heads/{b}": old
                         for b, old, _ in changes if old})
        git.update_refs({f"refs/opsagent/pushed/{job['run']}/{remote}/heads/{b}": new
                         for b, _, new in changes if new})  # what a rollback expects there
        args = ["push", "--atomic", "--porcelain", urls[remote]]
        args += [f"--force-with-lease=refs/heads/{b}:{old}" for b, old, _ in changes]
        args += [f"{new}:refs/heads/{b}" if new else f":refs/heads/{b}" for b, _, new in changes]
        done = git.run(*args)
        if done.returncode != 0:
            failed = True
            notice(f"push to {remote} failed, nothing changed there: "
                  f"{last_line(done.stderr or done.stdout)}")
            for b, _, _ in changes:
                states[b] = "failed"
            continue
        check = git.run("ls-remote", "--heads", urls[remote])
        there = {name.removeprefix("refs/heads/"): sha for sha, name in
                 (line.split() for line in check.stdout.splitlines() if line.strip())}
        for b, _, new in changes:
            if there.get(b, "") != new:
                failed, states[b] = True, "failed"
                notice(f"after the push, {remote} has {b} at {short(there.get(b, '') or 'nothing')}, "
                      f"not {short(new) or 'nothing'}")
            elif new:
                git.update_refs({f"{REMOTES}/{remote}/{b}": new})
            else:
                git.run("update-ref", "-d", f"{REMOTES}/{remote}/{b}")
        pushed += len(changes)
    return pushed, failed


def check_nothing_lost(git: Git, before: list[str]) -> int:
    """How many commits reachable from the heads before are reachable from no ref now."""
    if not before:
        return 0
    refs = git.refs("refs/opsagent")
    stdin = "".join(f"{sha}\n" for sha in dict.fromkeys(before))
    stdin += "".join(f"^{sha}\n" for sha in dict.fromkeys(refs.values()))
    done = git.run("rev-list", "--count", "--stdin", stdin=stdin)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else len(before)


def short(sha: str) -> str:
    return sha[:10]


def past(what: str) -> str:
    return {"delete": "deleted", "fast-forward": "fast-forwarded", "put back": "put back"}[what]


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
