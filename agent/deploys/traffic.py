"""nginx in front of a deploy's hosts: the upstream file, written whole by opsagent.

A host being replaced is `down` (nginx sends it no new requests); before it is touched,
the nginx workers that still serve requests under the old configuration are waited for
(they exit when their last request is answered), up to drain_timeout. Every change is
checked with `nginx -t` and the file put back when it fails, then reloaded gracefully.
"""

from __future__ import annotations

import math

from agent.core.steps import Command, Sequence
from agent.kinds.deploy.spec import Nginx

ID = "upstream"
_SCRIPT = r'''f=$1 new=$2 nginx=$3 wait=$4 pidfile=$5
mkdir -p "$(dirname "$f")"
printf '%s' "$new" > "$f.opsagent-new"
if [ -f "$f" ] && cmp -s "$f" "$f.opsagent-new"; then
  rm -f "$f.opsagent-new"; echo "upstream as wanted"; exit 0
fi
if [ -f "$f" ]; then cp -p "$f" "$f.opsagent-prev"; else : > "$f.opsagent-prev"; fi
mv "$f.opsagent-new" "$f"
if ! out=$($nginx -t 2>&1); then
  cp -p "$f.opsagent-prev" "$f"; echo "nginx -t refused the upstream (put back): $out" >&2; exit 1
fi
master=$(cat "$pidfile" 2>/dev/null)
old=$( [ -n "$master" ] && pgrep -P "$master" | tr '\n' ' ')
$nginx -s reload || { cp -p "$f.opsagent-prev" "$f"; echo "nginx reload failed (put back)" >&2; exit 1; }
echo "upstream set: $6"
end=$(( $(date +%s) + wait ))
for pid in $old; do
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$end" ]; then echo "drain: old workers still busy after ${wait}s"; exit 0; fi
    sleep 0.05
  done
done
'''


def address(nginx: Nginx, host: str) -> str:
    """A host's server address, from its own spec (rendered with its variables)."""
    found = nginx.address.replace("{name}", host)
    return found if ":" in found else f"{found}:{nginx.port}"


def weights(share: int | None, new: list[str], stable: list[str]) -> dict[str, str]:
    """nginx weights giving the hosts in `new` together `share` % of the requests: each new
    host W*m, each stable one (100-W)*k for k new and m stable hosts, reduced; {} when
    every serving host has the same version or no share was set."""
    if not share or not new or not stable:
        return {}
    one, other = share * len(stable), (100 - share) * len(new)
    common = math.gcd(one, other)
    return {**{n: f"weight={one // common}" for n in new},
            **{n: f"weight={other // common}" for n in stable}}


def upstream(nginx: Nginx, policy: str, servers: dict[str, tuple[str, str]]) -> str:
    """The upstream block: servers is host -> (address, '' in traffic or 'down')."""
    lines = [f"# written by opsagent deploy {policy}: edits are replaced",
             f"upstream {nginx.upstream} {{"]
    for where, state in servers.values():
        lines.append(f"    server {where}{' ' + state if state else ''};")
    return "\n".join([*lines, "}", ""])


def config_path(nginx: Nginx) -> str:
    return nginx.config.replace("{upstream}", nginx.upstream)


def set_upstream(nginx: Nginx, policy: str, servers: dict[str, tuple[str, str]]) -> Sequence:
    down = [h for h, (_, state) in servers.items() if state == "down"]
    weighed = [f"{h} {state}" for h, (_, state) in servers.items() if state.startswith("weight")]
    what = "; ".join(filter(None, [f"down: {', '.join(down)}" if down else "",
                                    ", ".join(weighed)])) or "every host in traffic"
    command = Command(f"nginx upstream {nginx.upstream} ({what})", (
        "sh", "-c", _SCRIPT, "upstream", config_path(nginx), upstream(nginx, policy, servers),
        nginx.nginx, str(nginx.drain_timeout), nginx.pid, what),
        effect="changed", changed_if="^upstream set", id=ID)
    return Sequence(f"traffic {nginx.upstream}", (command,))
