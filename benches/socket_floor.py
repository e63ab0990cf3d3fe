#!/usr/bin/env python3
"""The physical floor of sending live-view bytes: BYTES written to a loopback TCP socket in
FRAMES writes (one per frame, as the live view does), read and discarded by another
process. Prints the sender's CPU seconds (user + sys, from getrusage) and the sys part:
what any server pays in the kernel to hand those bytes to a socket.

    python3 benches/socket_floor.py BYTES FRAMES
"""
import os
import resource
import socket
import sys

total, frames = int(sys.argv[1]), max(1, int(sys.argv[2]))
chunk = bytes(max(1, total // frames))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
if os.fork() == 0:
    c = socket.create_connection(srv.getsockname())
    while c.recv(1 << 20):
        pass
    os._exit(0)
conn, _ = srv.accept()
before = resource.getrusage(resource.RUSAGE_SELF)
sent = 0
while sent < total:
    conn.sendall(chunk)
    sent += len(chunk)
after = resource.getrusage(resource.RUSAGE_SELF)
conn.close()
os.wait()
user = after.ru_utime - before.ru_utime
sys_ = after.ru_stime - before.ru_stime
print(f"{user + sys_:.2f} {sys_:.2f}")
