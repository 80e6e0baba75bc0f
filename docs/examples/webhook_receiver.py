#!/usr/bin/env python3
"""A minimal vigil webhook receiver (Python 3 standard library only).

vigil POSTs every matching event as JSON, at least once and in order, with an
`Idempotency-Key` header. This receiver remembers the keys it has handled, so each
event is acted on exactly once, and reacts to `host.fenced` — the moment an
orchestrator may restart the host's workloads elsewhere, because its power was
verified off.

    python3 docs/examples/webhook_receiver.py 8080 &
    vigil webhook add http://127.0.0.1:8080/vigil --type host.fenced --type alarm

Keys are kept in a file so that a restarted receiver does not act twice. Answer 2xx
only once the event is safely handled: any other answer (or none) makes vigil retry
with backoff.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SEEN_FILE = "vigil-webhook-seen.txt"
try:
    with open(SEEN_FILE) as f:
        seen = set(line.strip() for line in f)
except FileNotFoundError:
    seen = set()


def restart_workloads_elsewhere(event):
    # Replace with a call to your orchestrator. The host is verified powered off:
    # its workloads cannot still be writing to shared disks.
    print(f"host {event['host']} fenced: {event['text']}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        key = self.headers.get("Idempotency-Key", "")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event = json.loads(body)
        if key not in seen:
            if event["type"] == "host.fenced":
                restart_workloads_elsewhere(event)
            elif event["type"] == "alarm":
                print(f"ALARM on {event.get('host')}: {event['text']}", flush=True)
            seen.add(key)
            with open(SEEN_FILE, "a") as f:
                f.write(key + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
