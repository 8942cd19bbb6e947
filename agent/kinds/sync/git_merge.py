"""The sync host program's merge: a diverged branch merged in a scratch worktree.

The heads are merged one at a time in remote priority order (the first remote's side is
"ours"). Conflicts are settled only by the policy's rules: per-path resolutions (git's
union driver, or the priority remote's version through a driver that keeps ours) and git
rerere, which learns from the merges people made (each merge commit fetched is replayed
once and its resolution recorded, as git's contrib/rerere-train.sh does). Then verify
runs in the worktree. Anything else is a conflict: nothing is pushed and the files and
hunks are reported.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tempfile

from agent.kinds.sync.git_repo import Data, Git, notice, say, short

PRIORITY = "opsagent-priority"  # the merge driver that keeps the priority remote's version
LEARN = 20  # merge commits replayed for rerere per run, newest first
HUNK_LINES = 40  # lines of conflict shown per file


class Scratch:
    """A detached worktree of the mirror for one branch's merge, with the policy's
    resolutions as the mirror's info/attributes and rerere on."""

    def __init__(self, git: Git, job: Data, rule: Data) -> None:
        self.git, self.rule = git, rule
        self.path = tempfile.mkdtemp(prefix="merge-", dir=job["workdir"])
        name, email = job["committer"]
        env = dict(git.env, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
                   GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
        self.config = ["-c", "rerere.enabled=true", "-c", "rerere.autoUpdate=true",
                       "-c", f"merge.{PRIORITY}.driver=true",
                       "-c", f"merge.{PRIORITY}.name=keep the priority remote's version"]
        self.work = Git(git.mirror, env)
        os.makedirs(os.path.join(git.mirror, "info"), exist_ok=True)
        with open(os.path.join(git.mirror, "info", "attributes"), "w", encoding="utf-8") as f:
            for item in rule.get("resolve", []):
                driver = "union" if item["with"] == "union" else PRIORITY
                f.write(f"{item['path']} merge={driver}\n")

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.git.run("worktree", "remove", "--force", self.path)
        shutil.rmtree(self.path, ignore_errors=True)
        self.git.run("worktree", "prune")
        os.unlink(os.path.join(self.git.mirror, "info", "attributes"))

    def git_here(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.work.run(*self.config, *args, cwd=self.path)

    def checkout(self, sha: str) -> bool:
        if not os.path.exists(os.path.join(self.path, ".git")):
            return self.git.run("worktree", "add", "--detach", "--quiet", self.path,
                                sha).returncode == 0
        return self.git_here("checkout", "--quiet", "--force", "--detach", sha).returncode == 0


def learn(git: Git, job: Data, new: list[str], old: list[str]) -> None:
    """Replay the merge commits people made since the last run (without the policy's
    resolve rules: every conflict they settled is learnt), so that rerere records how
    they resolved their conflicts."""
    merges = git.run("rev-list", "--merges", f"--max-count={LEARN}", "--parents", *new,
                     *(f"^{sha}" for sha in old)).stdout.split("\n")
    merges = [line for line in merges if line.strip()]
    if not merges:
        return
    with Scratch(git, job, {}) as scratch:
        for line in merges:
            commit, first, *others = line.split()
            if not scratch.checkout(first):
                continue
            if scratch.git_here("merge", "--no-edit", "--no-ff", *others).returncode != 0:
                scratch.git_here("rerere")
                scratch.git_here("checkout", commit, "--", ".")
                scratch.git_here("rerere")
                say(f"learned the resolution of merge {short(commit)} (rerere)")
            scratch.git_here("reset", "--quiet", "--hard")


def merge(git: Git, job: Data, rule: Data, branch: str, heads: list[str]
          ) -> tuple[str, str, list[str]]:
    """Merge heads (distinct, priority order) of branch: ("merged", sha, []) when the merge
    is clean or settled by the rules and verify passed (in check mode: ("would merge",
    sha, []), verify not run); ("conflict", "", files) or ("verify failed", "", [])
    otherwise."""
    with Scratch(git, job, rule) as scratch:
        result = heads[0]
        if not scratch.checkout(result):
            notice(f"conflict {branch}: cannot check out {short(result)} to merge")
            return "conflict", "", []
        options = [f"-X{option}" for option in rule.get("options", [])]
        for other in heads[1:]:
            if git.is_ancestor(other, result):
                continue
            message = f"Merge {short(other)} into {branch} (opsagent sync)"
            done = scratch.git_here("merge", "--no-ff", "--no-edit", "-m", message, *options,
                                    other)
            left = [] if done.returncode == 0 else settled(scratch, branch,
                                                            done.stdout + done.stderr)
            if left:
                scratch.git_here("merge", "--abort")
                return "conflict", "", left
            for path in resolved_by_rules(git, rule, result, other):
                say(f"resolved {path} in {branch} with {path_rule(rule, path)['with']}")
            result = scratch.git_here("rev-parse", "HEAD").stdout.strip()
        if job["check"]:
            say(f"would merge {branch}: the merge is clean ({short(result)}); verify is not "
                "run in check mode")
            return "would merge", result, []
        if rule.get("verify") and not verified(scratch, rule, branch):
            return "verify failed", "", []
        return "merged", result, []


def settled(scratch: Scratch, branch: str, output: str) -> list[str]:
    """After a merge stopped: commit it if rerere resolved every conflict (and return
    []), else report the files and hunks left and return the files."""
    for line in output.splitlines():
        if line.startswith(("Resolved '", "Staged '")) and "previous resolution" in line:
            say(f"resolved {line.split(chr(39))[1]} in {branch} with rerere "
                "(as a person resolved it before)")
    left = scratch.git_here("diff", "--name-only", "--diff-filter=U").stdout.split()
    if not left and scratch.git_here("commit", "--no-edit", "--quiet").returncode == 0:
        return []
    hunks = scratch.git_here("diff", "--", *left).stdout.splitlines()
    notice(f"conflict {branch}: {', '.join(left) or 'the merge failed'}: nothing pushed"
           + "".join(f"\n  {line}" for line in hunks[:HUNK_LINES * max(1, len(left))]))
    return left or ["(the merge failed)"]


def resolved_by_rules(git: Git, rule: Data, ours: str, theirs: str) -> list[str]:
    """The paths both sides changed that a resolve rule covers."""
    base = git.run("merge-base", ours, theirs).stdout.strip()
    if not base or not rule.get("resolve"):
        return []
    changed = [set(git.run("diff", "--name-only", base, side).stdout.split())
               for side in (ours, theirs)]
    return sorted(p for p in changed[0] & changed[1] if path_rule(rule, p))


def path_rule(rule: Data, path: str) -> Data:
    """The first resolve rule for path, matched as gitattributes match a pattern without a
    slash: against the file's name at any depth (else the whole path)."""
    for item in rule.get("resolve", []):
        pattern = item["path"]
        name = path if "/" in pattern else path.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(name, pattern.lstrip("/")):
            return dict(item)
    return {}


def verified(scratch: Scratch, rule: Data, branch: str) -> bool:
    """Run verify in the merge's worktree, without the SSH key or git's SSH command."""
    env = {k: v for k, v in scratch.git.env.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(["sh", "-c", rule["verify"]], cwd=scratch.path, env=env,
                              capture_output=True, text=True, timeout=rule["timeout"],
                              check=False)
    except subprocess.TimeoutExpired:
        notice(f"verify failed {branch}: {rule['verify']!r} ran longer than {rule['timeout']}s"
               ": nothing pushed")
        return False
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-10:]
        notice(f"verify failed {branch}: {rule['verify']!r} exited {done.returncode}: nothing "
               "pushed" + "".join(f"\n  {line}" for line in tail))
        return False
    say(f"verified the merge of {branch}: {rule['verify']!r} passed")
    return True
