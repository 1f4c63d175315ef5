// One legacy session with the official TypeScript SDK (1.x) through a round-robin load balancer,
// while a replica is killed: every call must be answered in the same session.
//
// Usage: node ts_session.mjs <url> <token> <calls> <pause-after> <signal-dir>
// After <pause-after> calls it writes <signal-dir>/ts-paused and waits for <signal-dir>/killed.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, callsArg, pauseArg, signals] = process.argv.slice(2);
const calls = Number(callsArg);
const pauseAfter = Number(pauseArg);
let failures = 0;
function check(name, condition, why = "") {
  if (condition) console.log(`ok ${name}`);
  else {
    failures += 1;
    console.log(`FAIL ${name}: ${why}`);
  }
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "scale-ts", version: "1.0.0" });
await client.connect(transport);
const sessions = new Set();
let answered = 0;
for (let i = 0; i < calls; i++) {
  if (i === pauseAfter) {
    writeFileSync(join(signals, "ts-paused"), "");
    const deadline = Date.now() + 60_000;
    while (!existsSync(join(signals, "killed")) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    const result = await client.callTool({ name: "whoami", arguments: {} });
    if (!result.isError) answered += 1;
  } catch (error) {
    console.log(`call ${i}: ${error}`);
  }
  sessions.add(transport.sessionId ?? "");
}
check("typescript-sdk every call answered across replicas", answered === calls, `${answered}/${calls}`);
check("typescript-sdk one session, never re-initialized", sessions.size === 1 && !sessions.has(""), [...sessions].join(","));
await client.close();
process.exit(failures ? 1 : 0);
