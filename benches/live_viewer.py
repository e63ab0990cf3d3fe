#!/usr/bin/env python3
"""A live-view viewer for the benchmark: opens ws://HOST:PORT/api/live.ws, reads and counts
every message until the server closes or SIGTERM, then prints one line:
`viewer messages=N binary=N bytes=N`. Standard library only (no websocket package): the
server's frames are unmasked, so reading them is a few lines.

    python3 benches/live_viewer.py 127.0.0.1 8080
"""
import base64
import os
import signal
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
counts = {"messages": 0, "binary": 0, "bytes": 0}


def report(*_):
    print("viewer " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, report)
s = socket.create_connection((host, port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(
    (
        f"GET /api/live.ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
)
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("closed during the handshake")
    buf += chunk
head, buf = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("refused: " + head.split(b"\r\n")[0].decode())


def need(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(1 << 20)
        if not chunk:
            report()
        buf += chunk


while True:
    need(2)
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    at = 2
    if n == 126:
        need(4)
        n, at = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        need(10)
        n, at = int.from_bytes(buf[2:10], "big"), 10
    need(at + n)
    buf = buf[at + n :]
    if opcode == 8:
        report()
    counts["messages"] += 1
    if opcode == 2:
        counts["binary"] += 1
        counts["bytes"] += n
