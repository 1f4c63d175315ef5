"""An OTLP/HTTP trace sink for benchmarks: accepts POST /v1/traces, answers 200 with an empty
protobuf body, counts the requests and bytes, and prints `listening <port>` once ready.

    python bench/otlp_sink.py            # port 0 (any free port), stdlib only

Loopback only. It does not decode anything: the integration test (tests/it/traces.rs) checks
what is sent; this only lets the server export at full speed during a load run.
"""
import http.server
import sys
import threading

counts = {"requests": 0, "bytes": 0}
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        with lock:
            counts["requests"] += 1
            counts["bytes"] += length
        status = 200 if self.path == "/v1/traces" else 404
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(f"listening {server.server_address[1]}", flush=True)
try:
    server.serve_forever()
finally:
    print(f"received {counts['requests']} exports, {counts['bytes']} bytes", file=sys.stderr, flush=True)
