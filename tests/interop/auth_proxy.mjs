// A loopback reverse proxy that adds `Authorization: Bearer <token>` to every request, for clients
// that cannot send one (the conformance suite). Usage: node auth_proxy.mjs <target-origin> <token>
// Prints "listening <port>" once ready. Streams bodies both ways (SSE included).
import http from "node:http";

const [target, token] = process.argv.slice(2);
if (!target || !token) {
  console.error("usage: node auth_proxy.mjs <target-origin> <token>");
  process.exit(2);
}
const upstream = new URL(target);

const server = http.createServer((req, res) => {
  // The Host header is passed on unchanged, so the server's Host checks still see what the client sent.
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  const forward = http.request(
    { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
    (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    },
  );
  forward.on("error", (err) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end(`proxy error: ${err.message}`);
  });
  req.pipe(forward);
  res.on("close", () => forward.destroy());
});
server.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
