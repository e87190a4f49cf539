#!/usr/bin/env python3
"""slow-clients.py — how much server memory a client that stops reading costs.

Starts a chat server (v2_server or v1_server from a build tree) with
--max-queue-bytes CAP, connects N clients that log in (ver.2) and then never
read, and floods broadcasts from one more client that does read, until the
server has dropped every sleeper at its cap. Prints the server's resident
memory (VmRSS) before, at its highest, and after the drops, and the peak
growth per slow client. IOCP idea measured: each client's outbound queue is
bounded, so a slow client costs at most about CAP bytes, then it is dropped.

Usage: scripts/slow-clients.py [--build DIR] [--server v1|v2] [--clients N] [--cap BYTES]
"""
import argparse, os, select, socket, struct, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--build", default="build/linux")
p.add_argument("--server", default="v2", choices=["v1", "v2"])
p.add_argument("--clients", type=int, default=20)
p.add_argument("--cap", type=int, default=1 << 20)
a = p.parse_args()
program = os.path.join(a.build, "v2_packets/server/v2_server" if a.server == "v2" else "v1_basic_broadcast/server/v1_server")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
server = subprocess.Popen([program, "--port", str(port), "--max-queue-bytes", str(a.cap), "--threads", "2"],
                          stderr=subprocess.PIPE, text=True)
server.stderr.readline(); server.stderr.readline()  # backend, listening
rss = lambda: int(next(l.split()[1] for l in open(f"/proc/{server.pid}/status") if l.startswith("VmRSS"))) * 1024
frame = lambda t, text, size: struct.pack(">HH", 4 + size, t) + text.encode().ljust(size, b"\0")

def client(i):
    c = socket.create_connection(("127.0.0.1", port))
    if a.server == "v2":
        c.sendall(frame(1, f"u{i}", 16)); c.recv(22)
    return c

publisher = client("pub")
sleepers = []
for i in range(a.clients):
    c = client(i); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); sleepers.append(c)
time.sleep(0.5)
before = peak = rss()
message = frame(3, "x" * 32, 32) if a.server == "v2" else b"x" * 35 + b"\n"
burst = message * 100
dropped = lambda: server_log.count("slow consumer")
server_log = ""
os.set_blocking(server.stderr.fileno(), False)
deadline = time.time() + 120
while dropped() < a.clients and time.time() < deadline:
    publisher.sendall(burst)
    while select.select([publisher], [], [], 0)[0]:
        publisher.recv(1 << 20)
    peak = max(peak, rss())
    try:
        server_log += server.stderr.read() or ""
    except TypeError:
        pass
time.sleep(1)
after = rss()
print(f"{a.server}: {a.clients} slow clients, cap {a.cap} bytes; dropped {dropped()}")
print(f"RSS before {before / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, after the drops {after / 2**20:.1f} MiB")
print(f"peak growth per slow client: {(peak - before) / a.clients / 2**20:.2f} MiB (cap {a.cap / 2**20:.2f} MiB)")
server.terminate(); server.wait()
