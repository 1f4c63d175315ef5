"""One legacy session with the official Python `mcp` SDK (2.x) through a round-robin load
balancer, while a replica is killed: every call must be answered in the same session.

Usage: py_session.py <url> <token> <calls> <pause-after> <signal-dir>
After <pause-after> calls it writes <signal-dir>/py-paused and waits for <signal-dir>/killed
(the driver kills a replica meanwhile), then makes the rest. What went over the wire is watched
with an httpx event hook: one initialize, and every later request in its session.
Prints "ok …" / "FAIL …" lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    url, token, calls, pause_after, signals = (
        sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    initializes = 0
    session_ids: set[str] = set()

    async def seen(request) -> None:
        nonlocal initializes
        if request.method == "POST" and b'"initialize"' in (request.content or b""):
            initializes += 1
        sid = request.headers.get("mcp-session-id")
        if sid:
            session_ids.add(sid)

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    http.event_hooks["request"].append(seen)
    answered = 0
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        for i in range(calls):
            if i == pause_after:
                (signals / "py-paused").write_text("")
                with anyio.fail_after(60):
                    while not (signals / "killed").exists():
                        await anyio.sleep(0.05)
            result = await client.call_tool("whoami", {})
            if not result.is_error:
                answered += 1
    check("python-sdk every call answered across replicas", answered == calls, f"{answered}/{calls}")
    check("python-sdk one session, never re-initialized", initializes == 1 and len(session_ids) == 1,
          f"{initializes} initialize, sessions {session_ids}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
