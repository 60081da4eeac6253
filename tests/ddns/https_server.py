#!/usr/bin/python3
"""Local HTTPS server standing in for dyndns2 providers and webhook
receivers in the DDNS tests. Standard library only.

Every request is appended to --log as one JSON line (method, path, query,
headers -- Authorization included, so tests can check it -- and body)
before it is answered, so a client that saw its answer finds its line.

dyndns2 (GET, any path but /hook): the first label of the "hostname"
query parameter chooses the answer by its prefix:
  good* nochg* badauth* abuse* 911* notfqdn* nohost* dnserr*  that word
  slow*   sleeps --slow seconds, then answers "good"
  drop*   closes the connection without answering
  big*    answers "good" followed by 100 KiB of padding
  anything else: "good <myip>"
webhook (POST /hook): 200 "ok" unless the header X-Test-Status (with
X-Test-Retry-After) or the first label of "name" in the JSON body says
otherwise: status<NNN>[-retry<S>]*, slow*, drop*.

--port 0 picks a free port; the port is printed on stdout as one line
once the server listens.
"""
import argparse
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DYNDNS_WORDS = ("good", "nochg", "badauth", "abuse", "911", "notfqdn",
                "nohost", "dnserr")
STATUS_RE = re.compile(r"^status(\d{3})(?:-retry(\d+))?")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pcpd-test"

    def log_message(self, fmt, *args):
        pass  # the JSON log is the record

    def _record(self, body):
        url = urllib.parse.urlsplit(self.path)
        line = json.dumps({
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": {k: v for k, v in self.headers.items()},
            # latin-1 keeps every byte: the tests recompute HMACs on it
            "body": body.decode("latin-1"),
        })
        with self.server.log_lock:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def _answer(self, status, text, extra=()):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self._record(b"")
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        host = (q.get("hostname") or [""])[0]
        label = host.split(".")[0]
        myip = (q.get("myip") or [""])[0]
        if label.startswith("drop"):
            return self._drop()
        if label.startswith("slow"):
            time.sleep(self.server.slow)
            return self._answer(200, "good %s\n" % myip)
        if label.startswith("big"):
            return self._answer(200, "good %s\n%s" % (myip, "x" * 100 * 1024))
        for w in DYNDNS_WORDS:
            if label.startswith(w):
                return self._answer(200, ("%s %s\n" % (w, myip)) if w in ("good", "nochg")
                                    else w + "\n")
        self._answer(200, "good %s\n" % myip)

    def do_POST(self):
        body = self._read_body()
        self._record(body)
        status, retry = 200, None
        try:
            label = str(json.loads(body.decode("utf-8")).get("name") or "").split(".")[0]
        except (ValueError, AttributeError):
            label = ""
        m = STATUS_RE.match(label)
        if m:
            status, retry = int(m.group(1)), m.group(2)
        if self.headers.get("X-Test-Status"):
            status = int(self.headers["X-Test-Status"])
            retry = self.headers.get("X-Test-Retry-After")
        if label.startswith("drop"):
            return self._drop()
        if label.startswith("slow"):
            time.sleep(self.server.slow)
        extra = [("Retry-After", retry)] if retry else []
        self._answer(status, "ok\n" if status < 300 else "status %d\n" % status, extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, ctx):
        self.ctx = ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # the handshake runs in the request's thread, not in accept()
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # clients that time out or drop are part of the tests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--slow", type=float, default=2.0,
                    help="seconds slow* requests wait (longer than the client timeout)")
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv = Server((a.bind, a.port), ctx)
    srv.log_path = a.log
    srv.log_lock = threading.Lock()
    srv.slow = a.slow
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
