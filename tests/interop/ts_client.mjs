// Drives mcp-server-entra with the official TypeScript SDK (@modelcontextprotocol/sdk 1.x) client.
//
// Usage:
//   node ts_client.mjs http  <url> <token> [expected-name]
//   node ts_client.mjs stdio <binary> [KEY=VALUE ...]   (DEV=1 adds --dev, EXPECT_NAME=… the caller)
//
// Calls every tool and reads the card resource; prints "ok <check>" / "FAIL <check>: <why>" and
// exits non-zero if any check failed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

let failures = 0;
function check(name, condition, why = "") {
  if (condition) console.log(`ok ${name}`);
  else {
    failures += 1;
    console.log(`FAIL ${name}: ${why}`);
  }
}

const [kind, ...rest] = process.argv.slice(2);
let transport;
let expected = "Dev User";
let label;
if (kind === "http") {
  const [url, token, name] = rest;
  if (name) expected = name;
  transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  label = "typescript-http";
} else {
  const [binary, ...pairs] = rest;
  const env = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
  const args = ["stdio"];
  if (env.DEV === "1") args.push("--dev");
  if (env.EXPECT_NAME) expected = env.EXPECT_NAME;
  delete env.DEV;
  delete env.EXPECT_NAME;
  transport = new StdioClientTransport({ command: binary, args, env, stderr: "ignore" });
  label = "typescript-stdio";
}

const client = new Client({ name: "interop-ts", version: "1.0.0" });
try {
  await client.connect(transport);
  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name).sort();
  check(`${label} tools/list`, JSON.stringify(names) === '["greeting_card","roll_dice","whoami"]', JSON.stringify(names));

  const who = await client.callTool({ name: "whoami", arguments: {} });
  check(`${label} whoami`, who.structuredContent?.name === expected, JSON.stringify(who));

  const roll = await client.callTool({ name: "roll_dice", arguments: { sides: 20 } });
  const value = roll.structuredContent?.roll;
  check(`${label} roll_dice`, Number.isInteger(value) && value >= 1 && value <= 20, JSON.stringify(roll));

  const bad = await client.callTool({ name: "roll_dice", arguments: { sides: -5 } });
  check(`${label} roll_dice refuses -5`, bad.isError === true, JSON.stringify(bad));

  const card = await client.callTool({ name: "greeting_card", arguments: { message: "<i>x</i>" } });
  const html = card.content.find((c) => c.type === "resource")?.resource?.text ?? "";
  check(`${label} greeting_card`, html.includes("&lt;i&gt;x&lt;/i&gt;"), JSON.stringify(card).slice(0, 300));

  const read = await client.readResource({ uri: "ui://acme/greeting-card" });
  check(`${label} resources/read`, read.contents[0]?.mimeType === "text/html;profile=mcp-app", JSON.stringify(read).slice(0, 200));
  console.log(`   (${label} negotiated ${transport.protocolVersion ?? "stdio"})`);
} catch (err) {
  failures += 1;
  console.log(`FAIL ${label}: ${err?.stack ?? err}`);
} finally {
  await client.close().catch(() => {});
}
process.exit(failures ? 1 : 0);
