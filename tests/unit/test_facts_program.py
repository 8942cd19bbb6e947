"""The host-side program that reads a round of facts (agent/engine/fact_reader.py) answers
each command as `sh -c` run on its own would: exit status, stdout and stderr apart, one
command's syntax error or exit its own, the caller's folder, no stdin, output that is not
UTF-8. Its native answers to file facts are what the facts' own commands print.

(Running all of a round's commands in one shell, each in a subshell writing to files,
looked 10 % faster alone and was 20 % slower in bench/compare.py at 50 hosts: not done.)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from pyinfra.facts.files import Directory, File, FindInFile, Link, Sha1File

from agent.engine import native

FACTS = (Path(__file__).parents[2] / "agent" / "engine" / "fact_reader.py").read_text()

COMMANDS = [
    "sh -c 'echo out; echo err >&2; exit 3'",
    "sh -c 'if then fi'",  # a syntax error: this command fails, the next ones run
    "sh -c 'pwd'",
    "sh -c 'exit 0; echo never'",
    "sh -c 'cat; echo \"[${1-unset}]\"'",  # nothing on stdin, no arguments
    "sh -c " + shlex.quote("printf '\\377'"),  # not UTF-8
    "echo plain; false",  # not pyinfra's sh -c form
    "sh -c 'head -c 300000 /dev/zero | tr \"\\0\" x'",
    "sh -c " + shlex.quote("test -e /nonexistent || echo '\"quoted\" $HOME'"),
]


def answers(tmp_path: Path) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", FACTS], cwd=tmp_path, text=True,
                          input=json.dumps(COMMANDS) + "\n", capture_output=True, check=True,
                          timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines()]


def alone(tmp_path: Path) -> list[dict[str, Any]]:
    out = []
    for command in COMMANDS:
        done = subprocess.run(command, shell=True, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
        try:
            out.append({"rc": done.returncode, "stdout": done.stdout.decode(),
                        "stderr": done.stderr.decode()})
        except UnicodeDecodeError:
            out.append({"rc": done.returncode, "undecodable": True})
    return out


def test_each_command_is_answered_as_sh_c_alone_would_answer_it(tmp_path: Path) -> None:
    got, want = answers(tmp_path), alone(tmp_path)
    assert [a["rc"] for a in got] == [3, 2, 0, 0, 0, 0, 1, 0, 0]
    assert got[0] == {"rc": 3, "stdout": "out\n", "stderr": "err\n"}
    assert got[2]["stdout"] == f"{tmp_path}\n" and got[4]["stdout"] == "[unset]\n"
    assert got[5] == {"rc": 0, "undecodable": True} and len(got[7]["stdout"]) == 300000
    assert "Syntax error" in got[1]["stderr"] or "syntax error" in got[1]["stderr"]
    got[1]["stderr"] = want[1]["stderr"] = ""  # the shell names the script in its message
    assert got == want



def read(requests: list[Any], cwd: Path, env: dict[str, str] | None = None
         ) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", FACTS], cwd=cwd, text=True, env=env,
                          input=json.dumps(requests) + "\n", capture_output=True, check=True,
                          timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines()]


def paths(tmp_path: Path) -> list[str]:
    """Every kind of path a file fact meets."""
    (tmp_path / "file").write_text("some text\n")
    (tmp_path / "big").write_bytes(b"x" * (2 << 20))
    (tmp_path / "suid").write_text("")
    (tmp_path / "suid").chmod(0o4751)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir").chmod(0o1777)
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dangling").symlink_to("/nonexistent/x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "odd name's").write_text("quoted by stat\n")  # the command answers these
    (tmp_path / "odd-link").symlink_to("odd name's")
    names = ["file", "big", "suid", "dir", "link", "dangling", "fifo", "odd name's",
             "odd-link", "missing", "file/under-a-file", "dir/"]
    if os.geteuid() == 0:
        (tmp_path / "nobody's").write_text("")
        os.chown(tmp_path / "nobody's", 54321, 54321)  # no name: stat prints UNKNOWN
        names.append("nobody's")
    return [str(tmp_path / n) for n in names]


def unread(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers without access times: reading a file (a checksum) may move its atime."""
    return [{**a, "stdout": re.sub(r"atime=\d+", "atime=_", a.get("stdout", ""))}
            for a in answers]


def test_native_file_facts_print_what_their_commands_print(tmp_path: Path) -> None:
    facts, every = [File, Directory, Link, Sha1File], paths(tmp_path)
    requests = [{"command": "sh -c " + shlex.quote(fact().command(path).get_raw_value()),
                 native.WAYS[fact]: path} for fact in facts for path in every
                if not (fact is Sha1File and path.endswith("fifo"))]  # sha1sum waits on it
    got = read(requests, tmp_path)
    commands = read([r["command"] for r in requests], tmp_path)
    sha1 = {r["stat"]: a.pop("sha1") for r, a in zip(requests, got, strict=True) if "sha1" in a}
    assert unread(got) == unread(commands)
    alone = read([{**r, "command": "sh -c 'exit 99'"} for r in requests], tmp_path)
    answered = {(next(k for k in r if k != "command"), Path(r.get("stat") or r["sha1"]).name)
                for r, a in zip(requests, alone, strict=True) if a["rc"] != 99}
    plain = {"file", "big", "suid", "dir", "link", "dangling", "fifo", "missing",
             "under-a-file"}  # and dir/; not the odd name, nor the link to it
    assert answered == {("stat", n) for n in plain} | {  # sha1sum names the link as given
        ("sha1", n) for n in ("file", "big", "suid", "link", "dangling", "missing",
                              "under-a-file", "odd-link")}
    assert any("size=4 " in a["stdout"] and "link' -> 'file'" in a["stdout"] for a in got)
    assert any(a["stdout"].startswith("user=root group=root mode=-rwsr-x--x") for a in got) \
        or os.geteuid() != 0
    # a small regular file's stat carries its SHA-1, as Sha1File reads it (not the big one)
    want = hashlib.sha1(b"some text\n").hexdigest()
    assert sha1[str(tmp_path / "file")] == want and str(tmp_path / "big") not in sha1
    fact = Sha1File()
    fact.command(str(tmp_path / "file"))
    assert fact.process([f"{want}  {tmp_path / 'file'}"]) == want


def test_native_answers_step_aside_where_stat_would_quote_otherwise(tmp_path: Path) -> None:
    path = str(tmp_path / "file")
    (tmp_path / "file").write_text("")
    request = {"command": "sh -c " + shlex.quote(File().command(path).get_raw_value()),
               "stat": path}
    env = dict(os.environ, QUOTING_STYLE="c")  # stat then prints "...": only the command knows
    got = read([request], tmp_path, env)
    assert got == read([request["command"]], tmp_path, env)
    assert f'"{path}"' in got[0]["stdout"]


def test_native_find_in_file_prints_what_grep_prints(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("key = v\nother key = v2\n\nkey = v # end\nkey\n")
    (tmp_path / "no-newline").write_text("last key = v")
    (tmp_path / "empty").write_text("")
    (tmp_path / "binary").write_bytes(b"key = v\0\n")
    (tmp_path / "latin1").write_bytes(b"key = v \xe9\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "large").write_text("key = v\n" * 200000)  # over 1 MiB: grep streams it
    patterns = ["^.*key = v.*$", "^key = v$", "^key.*$", "^.*v2$", "key", "^$", "^.*$",
                "absent", "k.y", "^key = v\\$"]
    files = ["conf", "no-newline", "empty", "binary", "latin1", "dir", "missing", "large"]
    requests = []
    for name in files:
        for pattern in patterns:
            path = str(tmp_path / name)
            command = FindInFile().command(path=path, pattern=pattern)
            requests.append({"command": "sh -c " + shlex.quote(command.get_raw_value()),
                             "grep": [path, pattern]})
    got = read(requests, tmp_path)
    assert got == read([r["command"] for r in requests], tmp_path)
    by = {(Path(r["grep"][0]).name, r["grep"][1]): a["stdout"] for r, a in zip(requests, got,
                                                                               strict=True)}
    assert by["conf", "^.*key = v.*$"] == "key = v\nother key = v2\nkey = v # end\n"
    assert by["conf", "^key = v$"] == "key = v\n" and by["conf", "^$"] == "\n"
    assert by["conf", "absent"] == f"__pyinfra_exists_{tmp_path / 'conf'}\n"
    assert by["no-newline", "key"] == "last key = v\n"
    # which the reader answered itself: every pattern of text, in a UTF-8 file
    alone = read([{**r, "command": "sh -c 'exit 99'"} for r in requests], tmp_path)
    native = {(Path(r["grep"][0]).name, r["grep"][1]) for r, a in zip(requests, alone,
                                                                      strict=True) if a["rc"] != 99}
    assert native == {(f, p) for f in ("conf", "no-newline", "empty") for p in patterns[:8]}
