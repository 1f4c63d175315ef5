"""A long-lived legacy session with the official Python `mcp` SDK (2.x): the client keeps its GET
event stream open while it sits quiet for longer than the server's idle timeout, then calls a
tool in the same session (the "session lost after five quiet minutes" report, at seconds scale).
Then it stays quiet with no stream open past the timeout: its next call must be answered 404 by
the server, never 500.

Usage: py_long_session.py <url> <token> <idle seconds>
Prints "ok <name>" / "FAIL <name>: <why>" per check.
"""

from __future__ import annotations

import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

failures = 0


def check(name: str, condition: bool, why: str = "") -> None:
    global failures
    if condition:
        print(f"ok {name}")
    else:
        failures += 1
        print(f"FAIL {name}: {why}")


async def main() -> int:
    url, token, idle = sys.argv[1], sys.argv[2], float(sys.argv[3])
    headers = {"Authorization": f"Bearer {token}"}
    http = create_mcp_http_client(headers=headers)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        who = await client.call_tool("whoami", {})
        check("python-legacy first call", not who.is_error, repr(who)[:200])
        # Quiet for three idle timeouts; the SDK's GET stream stays open all along.
        await anyio.sleep(idle * 3)
        roll = await client.call_tool("roll_dice", {"sides": 6})
        check(
            "python-legacy call after a quiet spell with the GET stream open",
            not roll.is_error and isinstance((roll.structured_content or {}).get("roll"), int),
            repr(roll)[:300],
        )
    # A raw 2025-06-18 session gets no priming event; with no stream open it expires, and its id
    # is then unknown: 404, never 500.
    async with create_mcp_http_client(headers=headers) as raw:
        init = await raw.post(
            url,
            headers={"Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}},
        )
        sid = init.headers.get("mcp-session-id", "")
        await raw.post(
            url,
            headers={"Accept": "application/json, text/event-stream", "Mcp-Session-Id": sid,
                     "MCP-Protocol-Version": "2025-06-18"},
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        check("raw 2025-06-18 initialize has no priming event", "data: \n" not in init.text and "data:\n" not in init.text, init.text[:200])
        statuses = []
        with anyio.fail_after(idle * 10 + 30):
            while True:
                await anyio.sleep(idle * 2)
                r = await raw.post(
                    url,
                    headers={"Accept": "application/json, text/event-stream", "Mcp-Session-Id": sid,
                             "MCP-Protocol-Version": "2025-06-18"},
                    json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                )
                statuses.append(r.status_code)
                if r.status_code != 200:
                    break
        check("an expired session answers 404, never 500", statuses[-1] == 404, str(statuses))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
