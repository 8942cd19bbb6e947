"""The state store's tables, and the steps that bring an older store up to date.

The schema version lives in SQLite's `user_version`; each step runs in the transaction
that opens the store, so a store is never left half-migrated.
"""

from __future__ import annotations

import sqlite3

V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    command TEXT NOT NULL,          -- apply | plan | daemon
    who TEXT NOT NULL,
    check_mode INTEGER NOT NULL,
    source TEXT NOT NULL,           -- the inventory the run used
    failed INTEGER NOT NULL
);
CREATE TABLE host_results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    unreachable INTEGER NOT NULL,
    error TEXT NOT NULL,
    counts TEXT NOT NULL,           -- JSON: ok, changed, ran, failed, skipped, would_*
    PRIMARY KEY (run_id, host)
);
CREATE TABLE op_results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    seq INTEGER NOT NULL,
    policy TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    planned INTEGER NOT NULL,
    duration REAL NOT NULL,
    diff TEXT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (run_id, host, seq)
);
CREATE INDEX op_results_policy ON op_results (policy, host);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    run_id INTEGER NOT NULL,
    who TEXT NOT NULL,
    host TEXT NOT NULL,
    policy TEXT NOT NULL,
    step TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    diff TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
"""

# Summaries kept for metrics, `opsagent status` and reports: small (one row per policy
# and host, or per policy), updated with every run, never pruned by retention.
V2 = """
CREATE TABLE latest (
    policy TEXT NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    command TEXT NOT NULL,
    finished REAL NOT NULL,
    duration REAL NOT NULL,         -- this policy's operations on this host, seconds
    result TEXT NOT NULL,           -- success | failed | unreachable
    compliant INTEGER NOT NULL,
    drift INTEGER NOT NULL,         -- operations found not as wanted and left so (would change)
    changed INTEGER NOT NULL,       -- operations that changed something
    error TEXT NOT NULL,
    last_success REAL,              -- the last run (not check mode) that succeeded
    PRIMARY KEY (policy, host)
);
CREATE TABLE hosts (
    host TEXT PRIMARY KEY,
    reachable INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE totals (
    policy TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (policy, outcome)
);
CREATE TABLE durations (
    policy TEXT PRIMARY KEY,
    buckets TEXT NOT NULL,          -- JSON list: cumulative counts per bound in BUCKETS
    sum REAL NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE next_runs (
    policy TEXT NOT NULL,
    host TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (policy, host)
);
CREATE INDEX runs_finished ON runs (finished);
"""

# What kinds observe per policy and host (backup sizes, check outcomes...): JSON, merged
# run after run, read by the metrics.
V3 = """
CREATE TABLE facts (
    policy TEXT NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,             -- JSON
    at REAL NOT NULL,
    PRIMARY KEY (policy, host)
);
"""

# Runs that have begun and not yet been recorded: written before anything runs, replaced
# by the finished run in the transaction that records it. A row whose process is gone
# was killed (SIGKILL, power cut): the next run records it as interrupted.
V4 = """
CREATE TABLE begun (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    command TEXT NOT NULL,
    who TEXT NOT NULL,
    check_mode INTEGER NOT NULL,
    source TEXT NOT NULL,
    hosts TEXT NOT NULL,            -- JSON list of the hosts it was to run on
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL         -- the process's start time, so a reused pid is not it
);
"""

# The policies the daemon has in force (its current set): what compliance is about. Plans
# of other policies stay in history. No set (no daemon ever ran): every policy counts.
# host '*': a one-shot-only policy of the set, on whichever hosts it is applied to.
V5 = """
CREATE TABLE in_force (
    policy TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (policy, host)
);
CREATE TABLE in_force_set (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    digest TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE VIEW compliance AS SELECT * FROM latest
    WHERE NOT EXISTS (SELECT 1 FROM in_force_set)
       OR EXISTS (SELECT 1 FROM in_force f WHERE f.policy = latest.policy
                  AND f.host IN (latest.host, '*'));
"""

# Deploys (agent/deploys/), written step by step as they go, so that after the
# controller is killed `deploy status` tells the truth and `deploy resume` goes on.
V6 = """
CREATE TABLE deploys (
    id INTEGER PRIMARY KEY,
    policy TEXT NOT NULL,
    version TEXT NOT NULL,
    strategy TEXT NOT NULL,         -- rolling | canary | rollback
    status TEXT NOT NULL,           -- progressing | paused | succeeded | failed | aborted | rolled back
    phase TEXT NOT NULL,            -- what it does or waits for now, in words
    wave INTEGER NOT NULL,          -- waves done
    waves INTEGER NOT NULL,
    hosts TEXT NOT NULL,            -- JSON list: the policy's hosts in deploy order
    vars TEXT NOT NULL,             -- JSON: the --set variables it was started with
    who TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    request TEXT NOT NULL,          -- pause | resume | abort | promote | promote-full, or ''
    requested_by TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX deploys_policy ON deploys (policy, id);
CREATE TABLE deploy_hosts (
    deploy_id INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    phase TEXT NOT NULL,            -- pending | draining | updating | healthy | failed | rolled back ...
    version TEXT NOT NULL,          -- the release it serves, as last seen
    previous TEXT NOT NULL,         -- the release it served before this deploy
    at REAL NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (deploy_id, host)
);
CREATE TABLE deploy_measurements (
    deploy_id INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    wave INTEGER NOT NULL,
    metric TEXT NOT NULL,
    verdict TEXT NOT NULL,          -- passed | failed | inconclusive
    value TEXT NOT NULL             -- JSON: what was measured
);
CREATE INDEX deploy_measurements_deploy ON deploy_measurements (deploy_id, at);
"""

STEPS = {1: V1, 2: V2, 3: V3, 4: V4, 5: V5, 6: V6}
VERSION = max(STEPS)


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Run every step after `version`, inside the caller's transaction."""
    for step in range(version + 1, VERSION + 1):
        for statement in STEPS[step].split(";\n"):  # not executescript: it would COMMIT first
            if statement.strip():
                db.execute(statement)
    db.execute(f"PRAGMA user_version={VERSION}")
