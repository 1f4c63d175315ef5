// Per-tool authorization seen by the official TypeScript SDK (@modelcontextprotocol/sdk 1.x) client:
// a tool configured to need a scope the token lacks is not listed, and calling it gets the 403
// insufficient_scope step-up challenge (RFC 6750 §3.1) naming the scope to request.
//
// Usage: node ts_step_up.mjs <url> <token with access_as_user> <token with access_as_user Dice.Roll> <client-id>
//
// Prints "ok <check>" / "FAIL <check>: <why>" and exits non-zero if any check failed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, plainToken, diceToken, clientId] = process.argv.slice(2);
let failures = 0;
function check(name, condition, why = "") {
  if (condition) console.log(`ok ${name}`);
  else {
    failures += 1;
    console.log(`FAIL ${name}: ${why}`);
  }
}

// Every HTTP answer the SDK receives, so the challenge it was given can be checked.
const answers = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  answers.push({ status: response.status, challenge: response.headers.get("www-authenticate") });
  return response;
};

async function connect(token) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    fetch: recordingFetch,
  });
  const client = new Client({ name: "interop-ts-step-up", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

const label = "typescript-step-up";
let client;
try {
  client = await connect(plainToken);
  const names = (await client.listTools()).tools.map((t) => t.name).sort();
  check(`${label} tools/list hides roll_dice`, JSON.stringify(names) === '["greeting_card","whoami"]', JSON.stringify(names));

  let thrown;
  try {
    await client.callTool({ name: "roll_dice", arguments: { sides: 6 } });
  } catch (err) {
    thrown = err;
  }
  check(`${label} roll_dice is refused`, thrown !== undefined, "the call succeeded");
  const refused = answers.find((a) => a.status === 403);
  const challenge = refused?.challenge ?? "";
  check(`${label} gets 403 insufficient_scope`, challenge.includes('error="insufficient_scope"'), JSON.stringify(answers));
  check(
    `${label} challenge names the scopes to request`,
    challenge.includes(`scope="api://${clientId}/access_as_user api://${clientId}/Dice.Roll"`),
    challenge,
  );
  check(`${label} challenge names the metadata`, /resource_metadata="http:\/\/[^"]+\/\.well-known\/oauth-protected-resource\/mcp"/.test(challenge), challenge);
  const who = await client.callTool({ name: "whoami", arguments: {} });
  check(`${label} other tools still work`, who.structuredContent?.name === "Alice Example", JSON.stringify(who));
  await client.close();

  client = await connect(diceToken);
  const roll = await client.callTool({ name: "roll_dice", arguments: { sides: 6 } });
  const value = roll.structuredContent?.roll;
  check(`${label} roll_dice runs after step-up`, Number.isInteger(value) && value >= 1 && value <= 6, JSON.stringify(roll));
} catch (err) {
  failures += 1;
  console.log(`FAIL ${label}: ${err?.stack ?? err}`);
} finally {
  await client?.close().catch(() => {});
}
process.exit(failures ? 1 : 0);
