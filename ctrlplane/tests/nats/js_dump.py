"""Dumps a JetStream stream as JSON lines, speaking the NATS protocol on a
plain socket: an independent reader, no client library of ours.

    python3 js_dump.py PORT STREAM [SCHEMA]

Prints one line per stored message: {"seq", "subject", "msg_id", "data"}
(data parsed as JSON), then a last line {"messages": N, "schema_errors":
[...]}: every message validated against SCHEMA (JSON Schema 2020-12) when
given.
"""

import base64
import json
import socket
import sys


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.line()  # INFO
        self.s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n')
        self.s.sendall(b"SUB _INBOX.dump 1\r\n")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def take(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload):
        body = json.dumps(payload).encode()
        self.s.sendall(b"PUB %s _INBOX.dump %d\r\n%s\r\n" % (subject.encode(), len(body), body))
        while True:
            words = self.line().split()
            if not words:
                continue
            if words[0] == "PING":
                self.s.sendall(b"PONG\r\n")
            elif words[0] == "MSG":
                return json.loads(self.take(int(words[-1])))
            elif words[0] == "HMSG":
                raw = self.take(int(words[-1]))
                hlen = int(words[-2])
                return json.loads(raw[hlen:]) if len(raw) > hlen else {}
            elif words[0] == "-ERR":
                raise SystemExit(" ".join(words))


def header(hdrs, name):
    for line in hdrs.split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            if k.strip().lower() == name.lower():
                return v.strip()
    return None


def main():
    port, stream = int(sys.argv[1]), sys.argv[2]
    validator = None
    if len(sys.argv) > 3:
        import jsonschema
        with open(sys.argv[3]) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    c = Conn(port)
    info = c.request("$JS.API.STREAM.INFO." + stream, {})
    if "error" in info:
        raise SystemExit("stream info: %s" % info["error"])
    state = info["state"]
    errors = []
    n = 0
    for seq in range(state["first_seq"], state["last_seq"] + 1):
        r = c.request("$JS.API.STREAM.MSG.GET." + stream, {"seq": seq})
        if "message" not in r:
            continue
        m = r["message"]
        hdrs = base64.b64decode(m.get("hdrs", "")).decode() if m.get("hdrs") else ""
        data = json.loads(base64.b64decode(m.get("data", "")))
        if validator is not None:
            for e in validator.iter_errors(data):
                errors.append("seq %d: %s at %s" % (seq, e.message, list(e.absolute_path)))
        n += 1
        print(json.dumps({"seq": seq, "subject": m["subject"],
                          "msg_id": header(hdrs, "Nats-Msg-Id"), "data": data}))
    print(json.dumps({"messages": n, "stream_messages": state["messages"],
                      "replicas": info["config"].get("num_replicas", 1),
                      "leader": info.get("cluster", {}).get("leader"),
                      "schema_errors": errors[:20]}))


main()
