#!/usr/bin/env python3
"""A small paged users API for the README's poll example (Python 3 standard library only).

    python3 examples/poll/api.py 8765

serves on 127.0.0.1:8765 (never another interface):

    GET /v1/users?from=<t>&until=<t>&limit=<n>&cursor=<token>
    -> {"value": [{"id": ..., "email": ..., "signUpDate": ..., "score": ..., "isTrial": ...},
                  ...],
        "next": "<token>"}                    # absent on the last page

`from` / `until` select the users updated in [from, until), as ISO 8601 UTC
(`2026-12-01T06:00:00Z`) or Unix seconds; `limit` is the page size (default 2, at most
100); `cursor` is the `next` of the page before. A user is added every 20 seconds of the
server's life, updated "now", so each poll window of the example finds new ones (the
update time selects the window; it is not one of the user's attributes). With
`API_KEY` set in the environment, requests must carry `x-api-key: <API_KEY>` (else 401).
"""

import datetime
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

USERS_EVERY_SECONDS = 20
DEFAULT_LIMIT = 2
MAX_LIMIT = 100

_lock = threading.Lock()
_users = []


def _iso(at):
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add_user(at):
    n = len(_users) + 1
    _users.append({
        "id": f"u{n}",
        "email": f"user{n}@example.com",
        "signUpDate": _iso(at)[:10],
        "score": n * 1.5,
        "isTrial": n % 2 == 0,
        "updated": at,
    })


def _grow():
    while True:
        time.sleep(USERS_EVERY_SECONDS)
        with _lock:
            _add_user(int(time.time()))


def _parse_time(text):
    """Unix seconds, or ISO 8601 in UTC; None when it is neither."""
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp())


class Handler(BaseHTTPRequestHandler):
    server_version = "example-users-api/1"

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/v1/users":
            return self._answer(404, {"error": "no such path; try /v1/users"})
        key = os.environ.get("API_KEY")
        if key and not hmac.compare_digest(self.headers.get("x-api-key", ""), key):
            return self._answer(401, {"error": "a valid x-api-key header is required"})
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        start = _parse_time(query.get("from", "0"))
        end = _parse_time(query.get("until", str(2**40)))
        if start is None or end is None:
            return self._answer(400, {"error": "from and until are ISO 8601 UTC or Unix seconds"})
        try:
            limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
            offset = int(query.get("cursor", "c0")[1:]) if query.get("cursor") else 0
            if offset < 0:
                raise ValueError(offset)
        except ValueError:
            return self._answer(400, {"error": "limit is a number; cursor is a next of this API"})
        with _lock:
            window = [u for u in _users if start <= u["updated"] < end]
        page = window[offset:offset + limit]
        # `updated` selects the window but is not an attribute of the example's schema.
        body = {"value": [{k: v for k, v in u.items() if k != "updated"} for u in page]}
        if offset + limit < len(window):
            body["next"] = f"c{offset + limit}"
        return self._answer(200, body)

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("api: " + (fmt % args) + "\n")


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: api.py PORT   (serves on 127.0.0.1:PORT)")
    now = int(time.time())
    with _lock:
        # Five users from the last hour, so the first windows are not empty.
        for minutes_ago in (50, 40, 30, 20, 10):
            _add_user(now - minutes_ago * 60)
    threading.Thread(target=_grow, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"example users API on http://127.0.0.1:{sys.argv[1]}/v1/users", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
