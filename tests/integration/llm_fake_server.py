#!/usr/bin/env python3
"""llm_fake_server.py — a fake OpenAI-compatible and Ollama server for the
llm backend tests (tests/integration/llm_*.sh). Loopback only.

Usage: llm_fake_server.py PORTFILE LOGFILE
Binds 127.0.0.1 on a free port, writes the port to PORTFILE, and appends one
JSON line per request to LOGFILE: {"path", "auth", "body"} (auth is whether an
Authorization header came, and whether it matched "Bearer sk-test-SECRET").

The scenario is the requested model name:
  ok            streams "Hello, world!" in pieces, then usage and the end marker
  echo          replies with the request body's last message content
  schema        replies with the response_format/format it received (JSON)
  flaky429-N    the first N calls of this model answer 429 with Retry-After: 0
  flaky500-N    the first N calls answer 500
  hang          sends the status line and headers, then nothing for 30 s
  hang-first    the first call hangs (30 s), later ones are "ok"
  malformed     sends a data line that is not JSON
  cut           closes short of Content-Length before any text
  cut-first     the first call is "cut", later ones are "ok"
  cut-late      sends the first piece, then closes short (text already shown)
  error-event   sends a piece, then an error object in the stream
  bad-status    answers 401 with an error message
  length        stops with finish_reason "length"
"""
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECES = ["Hel", "lo, ", "world", "!"]
counts = {}
lock = threading.Lock()
portfile, logfile = sys.argv[1], sys.argv[2]


def bump(name):
    """Calls so far of one scenario on one endpoint (name = path + model)."""
    with lock:
        counts[name] = counts.get(name, 0) + 1
        return counts[name]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def log(self, body):
        auth = self.headers.get("Authorization")
        rec = {"path": self.path, "auth": auth is not None,
               "auth_ok": auth == "Bearer sk-test-SECRET", "body": body}
        with lock, open(logfile, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.log(None)
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": "tiny:latest"}, {"name": "coder:7b"}]})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "tiny"}, {"id": "coder"}]})
        else:
            self.send_json(404, {"error": "no such path"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        self.log(body)
        ollama = self.path == "/api/chat"
        if not ollama and self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": "no such path"})
        model = body.get("model", "")
        k = bump(self.path + " " + model)
        m = re.match(r"flaky(429|500)-(\d+)$", model)
        if m:
            if k <= int(m.group(2)):
                code = int(m.group(1))
                data = json.dumps({"error": {"message": "try later %d" % k}}).encode()
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            model = "ok"
        if model == "bad-status":
            return self.send_json(401, {"error": {"message": "invalid api key"}})
        if model == "hang" or (model == "hang-first" and k == 1):
            self.send_response(200)
            self.end_headers()
            self.wfile.flush()
            time.sleep(30)
            return
        pieces, finish = list(PIECES), "stop"
        if model == "echo":
            pieces = [body["messages"][-1]["content"]]
        elif model == "schema":
            pieces = [json.dumps(body.get("format") if ollama else body.get("response_format"))]
        elif model == "length":
            finish = "length"
        events = self.events(ollama, pieces, finish, model)
        ft = 0 if ollama else 1  # index of the first event carrying text
        cut = model == "cut" or (model == "cut-first" and k == 1)
        if cut:
            events = events[:ft]
        if model == "cut-late":
            events = events[:ft + 1]
            cut = True
        if model == "malformed":
            events.insert(ft + 1, b"data: {not json\n\n" if not ollama else b"{not json\n")
        if model == "error-event":
            err = {"error": {"message": "model crashed"}} if not ollama else {"error": "model crashed"}
            line = json.dumps(err).encode()
            events = events[:ft + 1] + [b"data: " + line + b"\n\n" if not ollama else line + b"\n"]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
        if cut:
            self.send_header("Content-Length", "100000")
        self.end_headers()
        for e in events:
            self.wfile.write(e)
            self.wfile.flush()
            time.sleep(0.01)
        if cut:
            self.connection.shutdown(socket.SHUT_RDWR)

    def events(self, ollama, pieces, finish, model):
        out = []
        if ollama:
            for p in pieces:
                out.append(json.dumps({"model": model, "message": {"role": "assistant", "content": p},
                                       "done": False}).encode() + b"\n")
            out.append(json.dumps({"model": model, "message": {"role": "assistant", "content": ""},
                                   "done": True, "done_reason": finish, "prompt_eval_count": 11,
                                   "eval_count": len(pieces), "eval_duration": 1000000}).encode() + b"\n")
            return out
        out.append(b": keep-alive comment\n\n")
        for p in pieces:
            ev = {"id": "x", "model": model, "choices": [{"index": 0, "delta": {"content": p},
                                                         "finish_reason": None}]}
            out.append(b"data: " + json.dumps(ev).encode() + b"\n\n")
        ev = {"id": "x", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        out.append(b"data: " + json.dumps(ev).encode() + b"\n\n")
        ev = {"id": "x", "model": model, "choices": [],
              "usage": {"prompt_tokens": 11, "completion_tokens": len(pieces)}}
        out.append(b"data: " + json.dumps(ev).encode() + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
# A client that gave up (read timeout, cut) makes writes fail: not an error.
srv.handle_error = lambda request, client_address: None
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os  # noqa: E402
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
