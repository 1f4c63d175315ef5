"""Drives mcp-server-entra with the official Python `mcp` SDK (2.x) client.

Usage:
  py_client.py http  <mode> <url> <token>            mode: auto | legacy
  py_client.py stdio <mode> <binary> [env KEY=VALUE...]

Calls every tool and reads the card resource, asserting the results. Prints one line per check
("ok <name>" or "FAIL <name>: <why>") and exits non-zero if any failed.
"""

from __future__ import annotations

import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
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


async def exercise(client: Client, label: str, expected_name: str) -> None:
    tools = await client.list_tools()
    names = sorted(t.name for t in tools.tools)
    check(f"{label} tools/list", names == ["greeting_card", "roll_dice", "whoami"], str(names))

    who = await client.call_tool("whoami", {})
    check(f"{label} whoami", (who.structured_content or {}).get("name") == expected_name, repr(who))

    roll = await client.call_tool("roll_dice", {"sides": 20})
    value = (roll.structured_content or {}).get("roll")
    check(f"{label} roll_dice", isinstance(value, int) and 1 <= value <= 20, repr(roll))

    bad = await client.call_tool("roll_dice", {"sides": 0})
    check(f"{label} roll_dice refuses 0", bool(bad.is_error), repr(bad))

    card = await client.call_tool("greeting_card", {"message": "<b>hi</b> & bye"})
    html = next((c.resource.text for c in card.content if getattr(c, "type", "") == "resource"), "")
    check(f"{label} greeting_card", "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in html, repr(card)[:300])

    read = await client.read_resource("ui://acme/greeting-card")
    mime = read.contents[0].mime_type if read.contents else None
    check(f"{label} resources/read", mime == "text/html;profile=mcp-app", repr(read)[:300])
    print(f"   ({label} negotiated {client.protocol_version})")


async def main() -> int:
    kind, mode = sys.argv[1], sys.argv[2]
    if kind == "http":
        url, token = sys.argv[3], sys.argv[4]
        expected = sys.argv[5] if len(sys.argv) > 5 else "Dev User"
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        transport = streamable_http_client(url, http_client=http)
        label = f"python-{mode}-http"
    else:
        binary = sys.argv[3]
        env = dict(pair.split("=", 1) for pair in sys.argv[4:])
        expected = env.pop("EXPECT_NAME", "Dev User")
        args = ["stdio"] + (["--dev"] if env.pop("DEV", "") == "1" else [])
        transport = StdioServerParameters(command=binary, args=args, env=env)
        label = f"python-{mode}-stdio"
    async with Client(transport, mode=mode) as client:
        await exercise(client, label, expected)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
