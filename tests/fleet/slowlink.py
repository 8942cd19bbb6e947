"""Latency for kernels without tc's netem: a delaying relay in front of the host's sshd.

An nft rule in the host's network namespace sends new SSH connections arriving on eth0
to this relay (port 2222 in the same namespace), which hands every chunk on to sshd,
and every answer back, half the delay later each way: a round trip costs `ms` more.
Connections opened before the fault are not delayed. The relay lives in the host's
namespace, so stopping or resetting the host ends it with the host's other processes.

    ip netns exec NS python3 tests/fleet/slowlink.py MS
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

PORT = 2222
TABLE = "fleet_delay"
RULES = f"""\
table ip {TABLE} {{
  chain pre {{ type nat hook prerouting priority dstnat; iifname "eth0" tcp dport 22 redirect to :{PORT}; }}
}}
"""


def install(netns: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=RULES, text=True,
                   check=True, capture_output=True)


def uninstall(netns: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "ip", TABLE],
                   capture_output=True, check=False)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    await sender


async def _serve(ms: int) -> None:
    half = ms / 2000

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            sshd_r, sshd_w = await asyncio.open_connection("127.0.0.1", 22)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, sshd_w, half), _pipe(sshd_r, client_w, half),
                             return_exceptions=True)

    server = await asyncio.start_server(relay, "0.0.0.0", PORT)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
