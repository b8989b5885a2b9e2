#!/usr/bin/env python3
"""A Kafka-protocol endpoint that serves only the Admin API's topic requests, for tests.

The embedded broker (librdkafka's mock cluster) implements neither CreateTopics nor
DeleteTopics, so td-coordinator's `--assign-topics admin` mode is tested against this:
td-coordinator's admin client is pointed here (`--admin-property bootstrap.servers=...`) while
everything else runs on the embedded broker.

It speaks just enough of the protocol for librdkafka's admin client: ApiVersions v0-v3,
Metadata v1 (itself as broker 1 and controller, and the topics it was asked to create),
CreateTopics v0 and DeleteTopics v0. Each CreateTopics/DeleteTopics request is appended to
--log as one JSON object per line:
  {"api": "CreateTopics", "topics": [{"name", "partitions", "replication", "config"}], ...}
  {"api": "DeleteTopics", "topics": ["name", ...], ...}
Topics whose names match --refuse (creation) or --refuse-delete (deletion) are answered with
TOPIC_AUTHORIZATION_FAILED (29).

Usage: fake_admin_broker.py --address-file FILE --log FILE [--refuse REGEX]
                            [--refuse-delete REGEX]
It listens on 127.0.0.1 (a free port), writes "127.0.0.1:PORT" to --address-file once it
accepts connections, and runs until killed.
"""
import argparse
import json
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time

API_METADATA, API_VERSIONS, API_CREATE_TOPICS, API_DELETE_TOPICS = 3, 18, 19, 20
SUPPORTED = {API_VERSIONS: (0, 3), API_METADATA: (1, 1), API_CREATE_TOPICS: (0, 0),
             API_DELETE_TOPICS: (0, 0)}
ERR_UNKNOWN_TOPIC, ERR_UNSUPPORTED_VERSION = 3, 35
ERR_TOPIC_AUTHORIZATION_FAILED, ERR_TOPIC_EXISTS = 29, 36
NODE_ID = 1


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()

    def array(self, item):
        n = self.take(">i")
        return None if n < 0 else [item() for _ in range(n)]


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def array(items, encode):
    return struct.pack(">i", len(items)) + b"".join(encode(i) for i in items)


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Broker:
    def __init__(self, log_path, refuse, refuse_delete):
        self.lock = threading.Lock()
        self.topics = {}   # name -> partitions
        self.log_path = log_path
        self.refuse = re.compile(refuse) if refuse else None
        self.refuse_delete = re.compile(refuse_delete) if refuse_delete else None
        self.port = 0

    def record(self, entry):
        with self.lock, open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def api_versions(self, version, _body):
        entries = sorted(SUPPORTED.items())
        if version >= 3:
            body = struct.pack(">h", 0) + uvarint(len(entries) + 1)
            for key, (lo, hi) in entries:
                body += struct.pack(">hhh", key, lo, hi) + uvarint(0)
            return body + struct.pack(">i", 0) + uvarint(0)
        body = struct.pack(">h", 0) + array(entries, lambda e: struct.pack(">hhh", e[0], *e[1]))
        return body + (struct.pack(">i", 0) if version >= 1 else b"")

    def metadata(self, _version, body):
        wanted = body.array(body.string)
        with self.lock:
            names = sorted(self.topics) if wanted is None else wanted
            known = dict(self.topics)
        brokers = array([NODE_ID], lambda n: struct.pack(">i", n) + string("127.0.0.1") +
                        struct.pack(">ih", self.port, -1))

        def topic(name):
            if name not in known:
                return struct.pack(">h", ERR_UNKNOWN_TOPIC) + string(name) + b"\0" + array([], None)
            return (struct.pack(">h", 0) + string(name) + b"\0" +
                    array(range(known[name]), lambda p: struct.pack(">hii", 0, p, NODE_ID) +
                          array([NODE_ID], lambda n: struct.pack(">i", n)) * 2))
        return brokers + struct.pack(">i", NODE_ID) + array(names, topic)

    def create_topics(self, _version, body):
        def new_topic():
            name = body.string()
            partitions, replication = body.take(">ih")
            body.array(lambda: (body.take(">i"), body.array(lambda: body.take(">i"))))
            config = body.array(lambda: (body.string(), body.string()))
            return {"name": name, "partitions": partitions, "replication": replication,
                    "config": dict(config or [])}
        topics = body.array(new_topic)
        timeout_ms = body.take(">i")
        self.record({"api": "CreateTopics", "topics": topics, "timeout_ms": timeout_ms,
                     "at_ms": int(time.time() * 1000)})
        answers = []
        with self.lock:
            for t in topics:
                if self.refuse and self.refuse.search(t["name"]):
                    answers.append((t["name"], ERR_TOPIC_AUTHORIZATION_FAILED))
                elif t["name"] in self.topics:
                    answers.append((t["name"], ERR_TOPIC_EXISTS))
                else:
                    self.topics[t["name"]] = t["partitions"]
                    answers.append((t["name"], 0))
        return array(answers, lambda a: string(a[0]) + struct.pack(">h", a[1]))

    def delete_topics(self, _version, body):
        names = body.array(body.string)
        timeout_ms = body.take(">i")
        self.record({"api": "DeleteTopics", "topics": names, "timeout_ms": timeout_ms,
                     "at_ms": int(time.time() * 1000)})
        answers = []
        with self.lock:
            for name in names:
                if self.refuse_delete and self.refuse_delete.search(name):
                    answers.append((name, ERR_TOPIC_AUTHORIZATION_FAILED))
                else:
                    answers.append((name, 0 if self.topics.pop(name, None) is not None
                                    else ERR_UNKNOWN_TOPIC))
        return array(answers, lambda a: string(a[0]) + struct.pack(">h", a[1]))

    def answer(self, frame):
        """The response frame (without its size) for one request frame."""
        r = Reader(frame)
        key, version, correlation = r.take(">hhi")
        r.string()   # client id
        handlers = {API_VERSIONS: self.api_versions, API_METADATA: self.metadata,
                    API_CREATE_TOPICS: self.create_topics, API_DELETE_TOPICS: self.delete_topics}
        lo, hi = SUPPORTED.get(key, (0, -1))
        if key == API_VERSIONS and version > hi:
            # KIP-511: an unknown ApiVersions version gets a v0 answer with the error.
            body = self.api_versions(0, r)
            return struct.pack(">i", correlation) + struct.pack(">h", ERR_UNSUPPORTED_VERSION) + body[2:]
        if key not in handlers or not lo <= version <= hi:
            raise ValueError(f"unsupported request: api key {key} version {version}")
        if key == API_VERSIONS and version >= 3:
            r.tags()   # request header v2
        return struct.pack(">i", correlation) + handlers[key](version, r)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        broker = self.server.broker
        sock = self.request
        while True:
            head = self.read(sock, 4)
            if head is None:
                return
            frame = self.read(sock, struct.unpack(">i", head)[0])
            if frame is None:
                return
            try:
                response = broker.answer(frame)
            except Exception as e:   # noqa: BLE001 - close the connection, as a broker would
                print(f"fake_admin_broker: {e}", file=sys.stderr, flush=True)
                return
            sock.sendall(struct.pack(">i", len(response)) + response)

    @staticmethod
    def read(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--refuse", default="")
    parser.add_argument("--refuse-delete", default="")
    args = parser.parse_args()
    broker = Broker(args.log, args.refuse, args.refuse_delete)
    server = Server(("127.0.0.1", 0), Handler)
    server.broker = broker
    broker.port = server.server_address[1]
    tmp = args.address_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"127.0.0.1:{broker.port}\n")
    os.replace(tmp, args.address_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
