"""The sync host program's last part: one repository's branches and tags kept in step.

argv[1] is JSON: {repos, concurrency, workdir, remotes: [{name, url, push_only}], rules:
[{match, strategy, verify, timeout, resolve, options}], tags: {sync, on_conflict},
deletions, committer, retries, retry_wait, keep_snapshots, check, run; rollback: a run to
put back instead}. The key for SSH remotes, if any, arrives in the environment
(OPSAGENT_SYNC_SSH_KEY), never on a command line. The repositories are synced side by
side (concurrency at a time), over one SSH connection per server (ssh's ControlMaster).

In a bare work mirror (WORKDIR/REPO.git) each remote's branches are fetched under
refs/opsagent/remotes/REMOTE/ (its tags under refs/opsagent/tags/REMOTE/); a remote whose
ls-remote shows the refs last fetched is not fetched again. For each
branch: in step; behind somewhere (fast-forward those remotes); diverged (ff-only:
reported, never forced; merge: merged in a scratch worktree, verified, then pushed);
rewritten or deleted on a remote (not propagated; the commits it dropped are kept under
refs/opsagent/kept/RUN/...). Each remote's updates go in one atomic push leased on the
heads fetched, so a push that raced a developer is refused, not overwritten; before it,
the heads it replaces are saved under refs/opsagent/backup/RUN/REMOTE/heads/... (and in
a bundle of what only they hold); after it, each remote is asked again for its heads. A
branch whose push failed on one remote is put back on the others, so it moves on every
remote or on none. Last, every commit any remote held is checked to be still reachable
from a remote's head or a kept or backup ref: if not, the run fails saying so.

Prints, per repository, one line per change (`REPO: ...`), then `SUMMARY {json}`; the
notices that need a person go to stderr. Exit 0: every branch in step; 2: done, but a
remote could not be reached (degraded); 1: a branch needs a person, a push failed, or a
commit would be lost (the worst of the repositories).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from agent.kinds.sync.git_branches import check_nothing_lost, keep_dropped, plan_branch
from agent.kinds.sync.git_merge import learn
from agent.kinds.sync.git_push import prune, push
from agent.kinds.sync.git_repo import (
    OUT,
    REMOTES,
    TAGS,
    Data,
    Git,
    first_line,
    last_line,
    listed_refs,
    mirror_of,
    notice,
    say,
    short,
    shown,
    tracking,
    urls_of,
)
from agent.kinds.sync.git_tags import Updates, plan_tags

CHECK = "refs/opsagent/check"  # what check mode fetched (dropped at its end)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")  # as the spec's
NEEDS_A_PERSON = ("diverged", "rewritten", "failed", "conflict", "verify failed")


def main(job: Data) -> int:
    env = {k: v for k, v in os.environ.items() if k != "OPSAGENT_SYNC_SSH_KEY"}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    key = os.environ.get("OPSAGENT_SYNC_SSH_KEY")
    with tempfile.TemporaryDirectory(prefix="opsagent-sync-") as tmp:
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=10",
               "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=15", *multiplexed()]
        if key:
            path = os.path.join(tmp, "key")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(key.rstrip("\n") + "\n")
            ssh += ["-i", path, "-o", "IdentitiesOnly=yes"]
        if job.get("known_hosts"):
            ssh += ["-o", f"UserKnownHostsFile={job['known_hosts']}",
                    "-o", "StrictHostKeyChecking=yes"]
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(part) for part in ssh)
        os.makedirs(job["workdir"], mode=0o700, exist_ok=True)
        repos, found = list(job["repos"]), True
        if job.get("discover"):
            found = discover(job, ssh, env, repos)
        with ThreadPoolExecutor(max_workers=job["concurrency"]) as pool:
            done = list(pool.map(lambda repo: one({**job, "repo": repo}, env), repos))
    for repo, (code, lines, notices, summary) in zip(repos, done, strict=True):
        sys.stdout.write("".join(f"{repo}: {line}\n" for line in lines))
        sys.stdout.write("SUMMARY " + json.dumps({**summary, "repository": repo, "code": code},
                                                 sort_keys=True) + "\n")
        sys.stderr.write("".join(f"{repo}: {line}\n" for line in notices))
    codes = {code for code, _, _, _ in done} | (set() if found else {2})
    return 1 if 1 in codes else (2 if 2 in codes else 0)


def discover(job: Data, ssh: list[str], env: dict[str, str], repos: list[str]) -> bool:
    """Add to repos the ones the gitolite remote lists (`info`) that match; False (and
    said on stderr: degraded) when it cannot be asked."""
    rule = job["discover"]
    url = next(r["url"] for r in job["remotes"] if r["name"] == rule["remote"])
    where = re.match(r"^ssh://([^/:]+)(?::(\d+))?/", url)
    assert where is not None  # the spec checked the URL
    port = ["-p", where[2]] if where[2] else []
    try:
        done = subprocess.run([*ssh, *port, where[1], "info"], env=env, capture_output=True,
                              text=True, check=False, timeout=120)
        why = "" if done.returncode == 0 else last_line(done.stderr)
    except subprocess.TimeoutExpired:
        why = "no answer in 120 s"
    if why:
        sys.stderr.write(f"discover: cannot list the repositories of {rule['remote']}: {why} "
                         "(syncing the listed ones only)\n")
        return False
    names = [m[1] for m in (re.match(r"^\s*R\S*(?:\s+W\S*)?\s*\t(\S+)$", line)
                            for line in done.stdout.splitlines()) if m]
    found = [n for n in names if NAME.match(n) and ".." not in n
             and any(fnmatch.fnmatchcase(n, p) for p in rule["match"])
             and not any(fnmatch.fnmatchcase(n, p) for p in rule["exclude"])]
    repos += [n for n in found if n not in repos]
    print(f"discover: {len(found)} repositories on {rule['remote']}: {', '.join(found)}")
    return True


def one(job: Data, env: dict[str, str]) -> tuple[int, list[str], list[str], Data]:
    """Sync (or roll back) one repository in this thread: its exit code, lines, notices
    and summary. A fault in one repository is its own failure, not the others'."""
    OUT.lines, OUT.notices, OUT.summary = [], [], {}
    began = time.monotonic()
    try:
        code = rollback(job, env) if job.get("rollback") else sync(job, env)
    except Exception as e:  # noqa: BLE001 (reported as this repository's failure)
        notice(f"failed: {type(e).__name__}: {e}")
        code = 1
    return code, OUT.lines, OUT.notices, {**OUT.summary,
                                          "seconds": round(time.monotonic() - began, 3)}


def multiplexed() -> list[str]:
    """ssh options that share one connection per server among the run's git commands, in
    a folder of this user's own (else none)."""
    folder = os.path.join(tempfile.gettempdir(), f"opsagent-sync-ssh-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return []
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return []  # not ours alone: someone could listen on the socket
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={folder}/%C",
            "-o", "ControlPersist=60"]


def rollback(job: Data, env: dict[str, str]) -> int:
    """Put back the heads and tags run job["rollback"] replaced, where they are as it left
    them."""
    mirror = mirror_of(job)
    if not os.path.isdir(mirror):
        notice(f"no work mirror {mirror}: is {job['repo']} one of the policy's repositories, "
               "synced on this host?")
        return 1
    git = Git(mirror, env, job["retries"], job["retry_wait"])
    urls = urls_of(job)
    saved = git.refs(f"refs/opsagent/backup/{job['rollback']}")  # what the run replaced
    pushed = git.refs(f"refs/opsagent/pushed/{job['rollback']}")  # what it put there
    updates: Updates = {}
    wanted = sorted(set(saved) | set(pushed))
    for name in wanted:
        remote, _, rest = name.partition("/")
        ref = "refs/" + rest
        if remote not in urls:
            notice(f"remote {remote} is no longer in the policy: {shown(ref)} not put back there")
            continue
        old, left = saved.get(name, ""), pushed.get(name, "")
        seen = git.run("rev-parse", "--verify", "--quiet", tracking(remote, ref)).stdout.strip()
        if seen != left:  # moved since that run: putting it back would undo someone's work
            notice(f"{shown(ref)} on {remote} moved since run {job['rollback']} (now "
                   f"{short(seen) or 'deleted'}, the run left {short(left) or 'nothing'}): "
                   "not put back")
            continue
        updates.setdefault(remote, []).append((ref, left, old))
    if not wanted:
        say(f"run {job['rollback']} changed no head of {job['repo']}: nothing to put back")
    states: dict[str, str] = {}
    count, failed = push(git, job, urls, updates, states, all_or_none=False)
    summary = {"branches": states, "down": {}, "pushed": count, "lost": 0}
    report(summary)
    return 1 if failed or OUT.notices else 0


def sync(job: Data, env: dict[str, str]) -> int:
    mirror = mirror_of(job)
    if not os.path.isdir(mirror):
        made = subprocess.run(["git", "init", "--bare", "--quiet", mirror], env=env,
                              capture_output=True, text=True, check=False)
        if made.returncode != 0:
            notice(f"cannot make the work mirror {mirror}: {made.stderr.strip()}")
            return 1
    git = Git(mirror, env, job["retries"], job["retry_wait"])
    urls = urls_of(job)
    sources = [r["name"] for r in job["remotes"] if not r["push_only"]]
    with_tags = job["tags"]["sync"]
    was = {name: git.refs(f"{REMOTES}/{name}") for name in urls}
    was_tags = {name: git.refs(f"{TAGS}/{name}") for name in urls}
    # check mode fetches beside the refs a real run compares with, and drops them after
    into = f"{CHECK}/remotes" if job["check"] else REMOTES
    tags_into = f"{CHECK}/tags" if job["check"] else TAGS
    down: dict[str, str] = {}
    now, now_tags = dict(was), dict(was_tags)
    for name, url in urls.items():
        listed = git.remote("ls-remote", "--heads", *(["--tags"] if with_tags else []), url)
        fetched = {f"refs/heads/{b}": sha for b, sha in was[name].items()} | {
            f"refs/tags/{t}": sha for t, sha in was_tags[name].items() if with_tags}
        if listed.returncode == 0 and listed_refs(listed.stdout) == fetched:
            continue  # nothing new there since the last fetch
        specs = [f"+refs/heads/*:{into}/{name}/*"]
        specs += [f"+refs/tags/*:{tags_into}/{name}/*"] if with_tags else []
        done = listed if listed.returncode else git.remote(
            "fetch", "--prune", "--no-tags", "--quiet", url, *specs)
        if done.returncode != 0:
            down[name] = first_line(done.stderr)
            notice(f"unreachable {name}: {down[name]}")
            continue
        now[name] = git.refs(f"{into}/{name}")
        now_tags[name] = git.refs(f"{tags_into}/{name}") if with_tags else {}
    up = [name for name in urls if name not in down]
    if not job["check"]:
        keep_dropped(git, job, up, was, now, was_tags, now_tags)
    if any(r["strategy"] == "merge" for r in job["rules"]):
        learn(git, job, [h for r in up for h in now[r].values()],
              [h for r in up for h in was[r].values()])
    states: dict[str, str] = {}
    conflicts: dict[str, Data] = {}
    updates: Updates = {name: [] for name in up}
    for branch in sorted({b for r in up for b in (*now[r], *was[r])}):
        rule = next((r for r in job["rules"] if fnmatch.fnmatchcase(branch, r["match"])), None)
        if rule is None:
            states[branch] = "ignored"
            continue
        states[branch] = plan_branch(git, job, rule, branch, up, sources, was, now, updates,
                                     conflicts)
    tags = plan_tags(job, up, sources, was_tags, now_tags, updates) if with_tags else {}
    pushed, failed = push(git, job, urls, updates, states)
    lost = 0 if job["check"] else check_nothing_lost(
        git, [sha for refs in (*was.values(), *now.values(), *was_tags.values(),
                               *now_tags.values()) for sha in refs.values()])
    git.update_refs({f"{CHECK}/{name}": "" for name in git.refs(CHECK)})
    if lost:
        notice(f"LOST {lost} commit(s): not reachable from any remote head or kept ref")
    elif not job["check"]:
        prune(git, job)
    summary = {"branches": states, "tags": tags, "conflicts": conflicts, "down": down,
               "pushed": pushed, "lost": lost}
    needs_a_person = bool(lost or failed or "conflict" in tags.values()
                          or any(s in NEEDS_A_PERSON for s in states.values()))
    if not job["check"]:
        remember(job, summary, in_step=not needs_a_person and not down)
    report(summary)
    return 1 if needs_a_person else (2 if down else 0)


def remember(job: Data, summary: Data, in_step: bool) -> None:
    """Keep, next to the mirror (they outlive the controller's state), the repository's
    running counts of outcomes (fast-forward, merged, and each new conflict, verify
    failed or diverged: one per set of heads, not per run), since when each conflict is
    open, and when every remote was last in step; add them to the summary."""
    path = os.path.join(job["workdir"], f"{job['repo']}.stats.json")
    try:
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, ValueError):
        stats = {}
    outcomes: dict[str, int] = stats.get("outcomes", {})
    now = time.time()
    for state in summary["branches"].values():
        if state in ("fast-forward", "merged"):
            outcomes[state] = outcomes.get(state, 0) + 1
    known, still_open = stats.get("conflicts", {}), {}
    for branch, conflict in summary["conflicts"].items():
        key = conflict["state"] + " " + " ".join(sorted(conflict["heads"].values()))
        since = known[branch]["since"] if known.get(branch, {}).get("key") == key else now
        if since == now:
            outcomes[conflict["state"]] = outcomes.get(conflict["state"], 0) + 1
        still_open[branch] = {"key": key, "since": since}
        conflict["since"] = since
    if in_step:
        stats["last_success"] = now
    stats.update(outcomes=outcomes, conflicts=still_open)
    with open(path + ".new", "w", encoding="utf-8") as f:
        json.dump(stats, f)
    os.replace(path + ".new", path)
    summary.update(outcomes=outcomes, last_success=stats.get("last_success"))


def report(summary: Data) -> None:
    """What observe reads (main prints it as the repository's SUMMARY line)."""
    OUT.summary = summary


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
