#!/usr/bin/env python3
"""Real WebSocket peers for the ws:// and ws-listen:// tests (Python's `websockets`).

Usage: ws_peer.py SCENARIO BRIDGE_BINARY

Each scenario makes its own pty pairs, starts the bridge binary, plays the device on
the pty masters and the WebSocket side with `websockets`, checks every byte, and
exits 0, or 1 with one line saying what went wrong. Every wait has a deadline.
"""

import atexit
import base64
import contextlib
import hashlib
import json
import os
import select
import signal
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import tty
import urllib.error
import urllib.request

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import serve

PATIENCE = 60.0
BIN = sys.argv[2]


def fail(why):
    print(why, flush=True)
    sys.exit(1)


class Pty:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def write(self, data):
        deadline = time.monotonic() + PATIENCE
        while data:
            select.select([], [self.master], [], 0.5)
            try:
                n = os.write(self.master, data)
            except BlockingIOError:
                n = 0
            data = data[n:]
            if time.monotonic() > deadline:
                fail("pty write stalled")

    def read_exactly(self, n):
        out = bytearray()
        deadline = time.monotonic() + PATIENCE
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"pty: only {len(out)} of {n} bytes: {bytes(out[:80])!r}")
            select.select([self.master], [], [], min(left, 0.5))
            try:
                out += os.read(self.master, n - len(out))
            except BlockingIOError:
                pass
        return bytes(out)


# Every bridge a scenario started: killed when the script ends, so that one that fails
# leaves none behind (a bridge with --reconnect would reopen a pty number that a later
# test is given, and take its bytes).
STARTED = []


@atexit.register
def _kill_started():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()


class Bridge:
    def __init__(self, *args):
        self.log = b""
        self.proc = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        STARTED.append(self.proc)
        self.lock = threading.Lock()
        self.drainer = threading.Thread(target=self._drain, daemon=True)
        self.drainer.start()

    def _drain(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            with self.lock:
                self.log += chunk

    def text(self):
        with self.lock:
            return self.log.decode(errors="replace")

    def wait_for(self, needle):
        deadline = time.monotonic() + PATIENCE
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail(f"no {needle!r} in the log: {self.text()}")
            time.sleep(0.005)

    def port(self):
        self.wait_for("listening on ")
        return int(self.text().split("listening on ")[1].split(":")[1].split()[0])

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=10)
        self.drainer.join(timeout=PATIENCE)
        if code != 0:
            fail(f"exit {code} after SIGINT: {self.text()}")

    def exit_code(self):
        """Waits for the exit and for everything it wrote to stderr (read by another thread)."""
        code = self.proc.wait(timeout=PATIENCE)
        self.drainer.join(timeout=PATIENCE)
        return code


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv(ws):
    return ws.recv(timeout=PATIENCE)


def listen_exact():
    """pty <-> ws-listen, both ways: text, binary, empty, 1 MB, a burst of 100."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    url = f"ws://127.0.0.1:{bridge.port()}/"
    with connect(url, max_size=None) as ws:
        bridge.wait_for("connected (1 of")
        big = bytes((i * 7) % 251 + 1 for i in range(1_000_000)).replace(b"\n", b"x")
        pty.write(b"text \xc3\xa9\n\xff\x00\r bin\n\n" + big + b"\n")
        for want in ["text \u00e9", b"\xff\x00\r bin", "", big]:
            got = recv(ws)
            if isinstance(want, bytes) and isinstance(got, str):
                got = got.encode()
            if got != want:
                fail(f"pty->ws: got {got[:60]!r}, want {want[:60]!r}")
        burst = [b"burst %03d \xfe" % i for i in range(100)]
        pty.write(b"".join(line + b"\n" for line in burst))
        for want in burst:
            got = recv(ws)
            if got != want:
                fail(f"pty->ws burst: got {got!r}, want {want!r}")
        ws.send("from the browser \u00e9")
        ws.send(b"\xfe\x00raw")
        ws.send("")
        ws.send("ends with newline\n")
        want = "from the browser \u00e9\n".encode() + b"\xfe\x00raw\n\nends with newline\n"
        if pty.read_exactly(len(want)) != want:
            fail("ws->pty: bytes changed")
        ws.send(big)
        if pty.read_exactly(len(big) + 1) != big + b"\n":
            fail("ws->pty: the 1 MB message changed")
        for line in burst:
            ws.send(line)
        want = b"".join(line + b"\n" for line in burst)
        if pty.read_exactly(len(want)) != want:
            fail("ws->pty burst changed")
    bridge.stop()


def fanout():
    """Three clients get every line; one that stops reading is dropped meanwhile."""
    pty = Pty()
    bridge = Bridge("--max-clients", "4", pty.path, "ws-listen://127.0.0.1:0")
    url = f"ws://127.0.0.1:{bridge.port()}/"
    stack = contextlib.ExitStack()
    clients = [stack.enter_context(connect(url, max_size=None)) for _ in range(3)]
    # A client that never reads, with a small window, so its buffers fill early.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", bridge.port()))
    stuck.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    bridge.wait_for("connected (4 of")
    # Far more than the stuck client's socket buffers and queue hold.
    lines = [b"line %06d " % i + b"x" * 500 for i in range(20_000)]
    writer = threading.Thread(target=pty.write, args=(b"".join(l + b"\n" for l in lines),))
    writer.start()
    got = [[], [], []]

    def drain(i):
        for _ in lines:
            got[i].append(recv(clients[i]))

    readers = [threading.Thread(target=drain, args=(i,)) for i in range(3)]
    for r in readers:
        r.start()
    for r in readers + [writer]:
        r.join(PATIENCE)
    for i in range(3):
        if [g.encode() if isinstance(g, str) else g for g in got[i]] != lines:
            fail(f"client {i} missed or changed lines ({len(got[i])} of {len(lines)})")
    bridge.wait_for("is not reading; dropped it")
    stack.close()
    stuck.close()
    bridge.stop()


def guarded():
    """token=, Origin checks, HTTP errors and the page."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0,token=s3cr\u00e9t,origin=http://dash.example")
    port = bridge.port()
    base = f"ws://127.0.0.1:{port}/"
    for url, origin, status in [
        (base, None, 401),
        (base + "?token=wrong", None, 401),
        (base + "?token=s3cr%C3%A9t", "http://evil.example", 403),
    ]:
        try:
            with connect(url, origin=origin):
                fail(f"{url} from {origin} was let in")
        except InvalidStatus as e:
            if e.response.status_code != status:
                fail(f"{url} from {origin}: {e.response.status_code}, want {status}")
    bridge.wait_for("wrong or missing token (401")
    bridge.wait_for("origin http://evil.example is not allowed")
    for n, origin in enumerate([None, f"http://127.0.0.1:{port}", "http://dash.example"]):
        with connect(base + "?token=s3cr%C3%A9t", origin=origin) as ws:
            # A line before the bridge lists the client reaches nobody: wait for it.
            deadline = time.monotonic() + PATIENCE
            while bridge.text().count(" connected (") <= n:
                if time.monotonic() > deadline:
                    fail(f"client {n + 1} never listed: {bridge.text()}")
                time.sleep(0.005)
            pty.write(b"ok\n")
            if recv(ws) != "ok":
                fail(f"no line for a client from {origin}")
    for request, status in [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"\x16\x03\x01garbage\r\n\r\n", b"400"),
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as s:
            s.sendall(request)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        if not answer.startswith(b"HTTP/1.1 " + status):
            fail(f"{request[:20]!r}: {answer[:40]!r}")
        if status == b"200" and b"serial-bridge" not in answer:
            fail("the page is not the console")
    bridge.stop()


def client():
    """ws:// against a real server, then the server going away: exit 1, or a reconnect."""
    port = free_port()
    received = []
    connections = []

    def handler(ws):
        connections.append(ws)
        for message in ws:
            received.append(message)

    for reconnect in [False, True]:
        received.clear()
        server = serve(handler, "127.0.0.1", port, max_size=None)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        pty = Pty()
        args = (["--reconnect"] if reconnect else []) + [pty.path, f"ws://127.0.0.1:{port}/boards/uno1?token=x"]
        bridge = Bridge(*args)
        bridge.wait_for("connected to")
        if "token=x" in bridge.text():
            fail("the token shows in the log")
        pty.write(b"up \xff\n")
        deadline = time.monotonic() + PATIENCE
        while not received:
            if time.monotonic() > deadline:
                fail("nothing reached the server")
            time.sleep(0.005)
        if received[0] != b"up \xff":
            fail(f"server got {received[0]!r}")
        connections[-1].send("down \u00e9")
        if pty.read_exactly(len("down \u00e9\n".encode())) != "down \u00e9\n".encode():
            fail("server -> pty changed")
        server.shutdown()
        if not reconnect:
            code = bridge.exit_code()
            if code != 1 or "ws://127.0.0.1" not in bridge.text():
                fail(f"exit {code} when the server went away: {bridge.text()}")
            continue
        bridge.wait_for("reconnecting")
        server = serve(handler, "127.0.0.1", port, max_size=None)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        bridge.wait_for("back after")
        received.clear()
        pty.write(b"again\n")
        deadline = time.monotonic() + PATIENCE
        while received != ["again"]:
            if time.monotonic() > deadline:
                fail(f"after the reconnect the server got {received!r}")
            time.sleep(0.005)
        bridge.stop()
        server.shutdown()


def chain():
    """pty A <-> ws-listen <-> ws:// <-> pty B: long lines cut at --max-line and partial
    lines sent by --flush-after cross as fragments, with nothing added or lost."""
    a, b = Pty(), Pty()
    opts = ["--max-line", "10", "--flush-after", "50"]
    server = Bridge(*opts, a.path, "ws-listen://127.0.0.1:0")
    port = server.port()
    client = Bridge(*opts, b.path, f"ws://127.0.0.1:{port}")
    server.wait_for("connected (1 of")
    long = bytes(range(32, 127)) * 3
    a.write(long + b"\n")
    if b.read_exactly(len(long) + 1) != long + b"\n":
        fail("a long line changed on the way")
    a.write(b"prompt> ")
    if b.read_exactly(8) != b"prompt> ":
        fail("the partial line did not cross")
    a.write(b"ok\n")
    if b.read_exactly(3) != b"ok\n":
        fail("the rest of the line changed")
    b.write(long + b"\r\n")
    if a.read_exactly(len(long) + 2) != long + b"\r\n":
        fail("the way back changed")
    client.stop()
    server.stop()


def echo():
    """A line longer than --max-line through ws-listen to a client that echoes every
    message, and back: the same bytes."""
    pty = Pty()
    bridge = Bridge("--max-line", "16", pty.path, "ws-listen://127.0.0.1:0")
    with connect(f"ws://127.0.0.1:{bridge.port()}/", max_size=None) as ws:
        bridge.wait_for("connected (1 of")
        line = b"0123456789abcdef" * 8 + b"\xff tail"
        pty.write(line + b"\n" + b"short\n")
        for _ in range(2):
            ws.send(recv(ws))
        if pty.read_exactly(len(line) + 7) != line + b"\nshort\n":
            fail("the echo changed the bytes")
    bridge.stop()


def unread(pty):
    import fcntl
    import termios
    buf = bytearray(4)
    fcntl.ioctl(pty.slave, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


def raw_server(pty):
    """A ws:// bridge from `pty` to a socket of our own that speaks nothing by itself:
    the listening socket, the bridge, and the bridge's connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    bridge = Bridge(pty.path, f"ws://127.0.0.1:{server.getsockname()[1]}/")
    conn, _ = server.accept()
    return server, bridge, conn


def raw_request(port, headers):
    """Sends a WebSocket upgrade request by hand; returns the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as s:
        s.sendall(("GET / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                   + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        return s.recv(4096).split(b"\r\n")[0].decode()


def drain():
    """A stop sends clients everything the bridge read, for ws-listen and tcp-listen."""
    for scheme in ["ws-listen", "tcp-listen"]:
        pty = Pty()
        bridge = Bridge(pty.path, f"{scheme}://127.0.0.1:0")
        port = bridge.port()
        data = b"".join(b"%07d " % i + b"z" * 90 + b"\n" for i in range(50_000))
        got = bytearray()
        if scheme == "ws-listen":
            ws = connect(f"ws://127.0.0.1:{port}/", max_size=None).__enter__()
            recv_one = lambda: recv(ws).encode() + b"\n"
        else:
            ws = socket.create_connection(("127.0.0.1", port))
            recv_one = lambda: ws.recv(65536)
        bridge.wait_for("connected (1 of")
        writer = threading.Thread(target=pty.write, args=(data,))
        writer.start()

        def read_all():
            while len(got) < len(data):
                chunk = recv_one()
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        writer.join(PATIENCE)
        # Everything read by the bridge: the terminal's queue empty for a while (the
        # kernel's buffer in front of it is not counted there).
        deadline = time.monotonic() + PATIENCE
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.1 and time.monotonic() < deadline:
            if unread(pty):
                quiet_since = time.monotonic()
            time.sleep(0.001)
        bridge.stop()
        reader.join(PATIENCE)
        summary = [l for l in bridge.text().splitlines() if f"-> {scheme}" in l][-1]
        written = int(re.search(r"lines?, (\d+) bytes?", summary).group(1))
        if bytes(got) != data[:len(got)] or len(got) != written:
            fail(f"{scheme}: {len(got)} bytes arrived, the summary says {written}: {summary}")
        ws.close()


def hostile():
    """Peers that stall, vanish mid-message or lie about their host."""
    pty = Pty()
    bridge = Bridge("--max-clients", "1", pty.path, "ws-listen://127.0.0.1:0,token=a+b")
    port = bridge.port()
    # A connection that sends nothing does not take the one client's place.
    silent = socket.create_connection(("127.0.0.1", port))
    with connect(f"ws://127.0.0.1:{port}/?token=a+b") as ws:
        bridge.wait_for("connected (1 of")
        pty.write(b"hi\n")
        if recv(ws) != "hi":
            fail("no line for the client next to a silent connection")
    silent.close()
    bridge.stop()
    # A message left unfinished by a client that vanished is not glued to the next.
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0,token=a+b")
    port = bridge.port()
    vanish = socket.create_connection(("127.0.0.1", port))
    vanish.sendall(b"GET /?token=a+b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    vanish.recv(4096)
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"GARBAGE"))
    vanish.sendall(b"\x01\x87" + mask + payload)  # text, not final
    vanish.close()
    bridge.wait_for("left")
    with connect(f"ws://127.0.0.1:{port}/?token=a+b") as ws:
        ws.send("reboot")
        if pty.read_exactly(7) != b"reboot\n":
            fail("an unfinished message was glued to the next line")
    bridge.stop()
    # Without a token, a page's "own" origin counts only for an address or localhost.
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    evil = raw_request(port, {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"})
    own = raw_request(port, {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"})
    if "403" not in evil or "101" not in own:
        fail(f"rebinding: {evil!r}; own page: {own!r}")
    bridge.stop()
    # Clients that send a close frame and reset at once: each one's threads end at
    # once (they waited a second for a close reply that could not go out, and a burst
    # piled up hundreds of threads).
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    peak = 0
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(UPGRADE)
        sock.recv(4096)
        sock.sendall(frame(0x88, (1000).to_bytes(2, "big")))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        with open(f"/proc/{bridge.proc.pid}/status") as f:
            peak = max(peak, next(int(row.split()[1]) for row in f if row.startswith("Threads:")))
    if peak > 64:
        fail(f"{peak} threads during a burst of closing and resetting clients")
    bridge.stop()
    # A ws:// server that never answers the handshake: a stop ends the wait at once.
    server, bridge, conn = raw_server(pty)
    started = time.monotonic()
    bridge.stop()
    if time.monotonic() - started > 1.5:
        fail(f"a stop during the handshake took {time.monotonic() - started:.1f} s")
    conn.close()
    server.close()
    # What a server answered, not "connection refused".
    listener = Bridge(Pty().path, "ws-listen://127.0.0.1:0,token=x")
    lport = listener.port()
    refused = Bridge(pty.path, f"ws://127.0.0.1:{lport}/")
    if refused.exit_code() != 3 or "the server answered 401" not in refused.text():
        fail(f"a 401: {refused.text()}")
    listener.stop()


UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def frame(first, payload, mask=b"\x01\x02\x03\x04"):
    """One frame by hand: `first` is the FIN/RSV/opcode byte; masked unless mask is None."""
    if mask is None:
        return bytes([first, len(payload)]) + payload
    return (bytes([first, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def closed_with(sock):
    """What the bridge sent before it hung up: its close frame's code, or None."""
    sock.settimeout(PATIENCE)
    got = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(4096):
            got += chunk
    # Past any pongs (control frames from a server: unmasked, at most 125 bytes).
    at = 0
    while at + 2 <= len(got):
        opcode, size = got[at] & 0x0F, got[at + 1] & 0x7F
        if opcode == 0x8:
            return int.from_bytes(got[at + 2:at + 4], "big") if size >= 2 else None
        at += 2 + size
    return None


def rule_breakers():
    """Frames that break RFC 6455 fail the connection with a close frame (1002, or 1009
    for one too large), and nothing of them reaches the device: an unmasked frame from
    a client, reserved bits, a continuation with no message under way, a new message
    inside a fragmented one, an unknown opcode, a bad frame after a burst of pings.
    A message cut short by a close is not passed on either. On the ws:// side, a server
    that masks its frames is refused, and a server's close is answered."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0,token=a%41")
    port = bridge.port()
    pings = b"".join(frame(0x89, b"p%d" % i) for i in range(200))
    cases = {
        "unmasked": (frame(0x81, b"UNMASKED", mask=None), 1002),
        "reserved bits": (frame(0xC1, b"RSV1"), 1002),
        "stray continuation": (frame(0x80, b"STRAY"), 1002),
        "message inside a message": (frame(0x01, b"GARB") + frame(0x81, b"AGE"), 1002),
        "unknown opcode": (frame(0x01, b"OPEN") + frame(0x83, b"OP3"), 1002),
        "pings, then unmasked": (pings + frame(0x81, b"LATE", mask=None), 1002),
        "too large": (b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"\x01\x02\x03\x04", 1009),
        "closed mid-message": (frame(0x01, b"PARTIAL") + frame(0x88, b"\x03\xe8"), 1000),
        "a close no one may send": (frame(0x88, b"\x03\xed"), 1002),
        "a close reason that is not UTF-8": (frame(0x88, b"\x03\xe8\xff"), 1007),
    }
    for name, (data, expected) in cases.items():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(UPGRADE.replace(b"GET / ", b"GET /?token=a%41 "))
        if b" 101 " not in sock.recv(4096):
            fail(f"{name}: no upgrade")
        sock.sendall(data)
        code = closed_with(sock)
        sock.close()
        if code != expected and not (expected == 1000 and code is None):
            fail(f"{name}: closed with {code}, not {expected}: {bridge.text()}")
        with connect(f"ws://127.0.0.1:{port}/?token=aA") as ws:
            ws.send("ok")
            got = pty.read_exactly(3)
            if got != b"ok\n":
                fail(f"{name}: the device got {got!r} after it")
    bridge.stop()
    for name, data in [("masks its frames", frame(0x81, b"MASKED")),
                       ("closes", frame(0x88, b"\x03\xe8", mask=None))]:
        server, bridge, conn = raw_server(pty)
        conn.settimeout(PATIENCE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        conn.sendall(data)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(4096):
                answer += chunk
        code = bridge.exit_code()
        if code != 1 or not answer.startswith(b"\x88"):
            fail(f"a server that {name}: exit {code}, answered {answer[:8]!r}: {bridge.text()}")
        if name == "masks its frames" and "a masked frame from the server" not in bridge.text():
            fail(f"a masking server: {bridge.text()}")
        conn.close()
        server.close()
    if select.select([pty.master], [], [], 0)[0]:
        fail(f"the device got {os.read(pty.master, 100)!r} from a rule breaker")


def crowded():
    """Connections that send one byte and wait (64 at once, renewed as fast as they are
    closed) do not lock page loads and WebSocket clients out of ws-listen."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    idle = []

    def one_byte():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"G")
        idle.append(sock)

    for _ in range(64):
        one_byte()
    stop = threading.Event()

    def renew():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                one_byte()
            time.sleep(0.002)

    attacker = threading.Thread(target=renew, daemon=True)
    attacker.start()
    try:
        for i in range(10):
            with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as page:
                page.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status = page.recv(4096).split(b"\r\n")[0]
            if status != b"HTTP/1.1 200 OK":
                fail(f"page load {i} with 64 idle connections renewed: {status!r}")
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=PATIENCE) as ws:
            bridge.wait_for("connected (1 of")
            pty.write(b"through the crowd\n")
            if recv(ws) != "through the crowd":
                fail("no line for a client that came through the crowd")
    finally:
        stop.set()
        attacker.join(timeout=PATIENCE)
        for sock in idle:
            sock.close()
    bridge.stop()


def cut_lines():
    """A line a source stops in the middle of, after pieces of it went on, is ended
    there, so the next line does not join it: a WebSocket message cut off after
    --max-line bytes, and a tcp-listen client that leaves in the middle of a line."""
    pty = Pty()
    bridge = Bridge("--max-line", "8", pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    vanish = socket.create_connection(("127.0.0.1", port))
    vanish.sendall(UPGRADE)
    vanish.recv(4096)
    vanish.sendall(frame(0x01, b"LONGLONGLONG"))  # text, not final: a message under way
    if pty.read_exactly(8) != b"LONGLONG":
        fail("the first piece of a long message did not go on")
    vanish.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    vanish.close()
    bridge.wait_for("in the middle of a line")
    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("reboot")
        got = pty.read_exactly(12)
        if got != b"LONG\nreboot\n":
            fail(f"a message cut off after its first piece, then the next: {got!r}")
    bridge.stop()
    if "1 line cut short" not in bridge.text():
        fail(f"the cut line is not counted: {bridge.text()}")
    # tcp-listen: a client that leaves mid-line, then another client's line.
    bridge = Bridge("--max-clients", "2", pty.path, "tcp-listen://127.0.0.1:0")
    port = bridge.port()
    with socket.create_connection(("127.0.0.1", port)) as half:
        half.sendall(b"half")
        bridge.wait_for("connected (1 of")
    bridge.wait_for("left in the middle of a line")
    with socket.create_connection(("127.0.0.1", port)) as whole:
        whole.sendall(b"whole\n")
        got = pty.read_exactly(11)
    if got != b"half\nwhole\n":
        fail(f"a client that left mid-line, then another's line: {got!r}")
    bridge.stop()
    # Another client's line waits until an over-long line under way ends, and no
    # longer than a second of its silence.
    bridge = Bridge("--max-clients", "2", "--max-line", "8", pty.path, "tcp-listen://127.0.0.1:0")
    port = bridge.port()
    long = socket.create_connection(("127.0.0.1", port))
    other = socket.create_connection(("127.0.0.1", port))
    deadline = time.monotonic() + PATIENCE
    while bridge.text().count("connected (") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    long.sendall(b"A" * 12)
    if pty.read_exactly(8) != b"A" * 8:
        fail("the first piece of the long line did not go on")
    other.sendall(b"b-line\n")
    long.sendall(b"A\n")
    got = pty.read_exactly(6 + 7)
    if got != b"AAAAA\nb-line\n":
        fail(f"another client's line in the middle of a long one: {got!r}")
    long.sendall(b"B" * 12)
    if pty.read_exactly(8) != b"B" * 8:
        fail("the first piece of the second long line did not go on")
    started = time.monotonic()
    other.sendall(b"c-line\n")
    got = pty.read_exactly(1 + 7)
    waited = time.monotonic() - started
    if got != b"\nc-line\n" or waited < 0.5:
        fail(f"a long line left unfinished: {got!r} after {waited:.2f} s")
    long.sendall(b"B\n")
    if pty.read_exactly(6) != b"BBBBB\n":
        fail("the rest of the long line did not begin a line of its own")
    long.close()
    other.close()
    bridge.stop()


def stalled_client():
    """Lines queued for a client dropped because it stopped reading are counted as
    dropped, not as forwarded: the summary's count is what the client could read."""
    pty = Pty()
    bridge = Bridge(pty.path, "tcp-listen://127.0.0.1:0")
    port = bridge.port()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    bridge.wait_for("connected (1 of")
    total = 0
    line = b"s" * 99 + b"\n"
    deadline = time.monotonic() + PATIENCE
    while "is not reading" not in bridge.text():
        if time.monotonic() > deadline:
            fail(f"the client was never dropped: {bridge.text()}")
        pty.write(line * 1000)
        total += 1000
    bridge.stop()
    log = bridge.text()
    found = re.search(r"-> tcp-listen://127.0.0.1:0: (\d+) lines?, \d+ bytes?, (\d+) dropped", log)
    if not found:
        fail(f"no summary: {log}")
    written, dropped = int(found.group(1)), int(found.group(2))
    got = b""
    client.settimeout(5)
    with contextlib.suppress(OSError):
        while chunk := client.recv(1 << 20):
            got += chunk
    client.close()
    whole = got.count(b"\n")
    # A batch cut by the drop may have reached the client in part: it is counted as
    # dropped, its first lines read all the same.
    # (Lines still in the pty when the stop came were never read: not counted at all.)
    if written > whole or whole - written > 1000 or written + dropped > total:
        fail(f"{total} lines sent: the summary says {written} written and {dropped} dropped, "
             f"and the client could read {whole}")


CONSOLE = "serial-bridge.console"


def hello_of(ws):
    """The console hello: the times of the earlier lines, and the bridge's delimiter."""
    hello = json.loads(recv(ws))
    if set(hello) != {"earlier", "delimiter"}:
        fail(f"a hello with other keys: {hello}")
    return hello["earlier"], hello["delimiter"]


def console_protocol():
    """The console page's subprotocol: a hello and the history for a tab that opens
    late (byte-exact, oldest first, none for other clients, none with history=0, no
    gap or repeat when it opens in a flood), and what it sends goes on as sent, at once.
    The page names the device and this machine; uPlot is served beside it."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0,history=5")
    port = bridge.port()
    url = f"ws://127.0.0.1:{port}/"
    lines = [b"one", b"two \xff\x00", b"three\r", b"four \xc3\xa9", b"", b"six", b"seven",
             b"eight"]
    pty.write(b"".join(line + b"\n" for line in lines))
    bridge.wait_for("(the last 5 are kept for a page that opens, see history=)")
    deadline = time.monotonic() + PATIENCE
    while True:
        with connect(url, subprotocols=[CONSOLE], max_size=None) as ws:
            if ws.subprotocol != CONSOLE:
                fail(f"subprotocol {ws.subprotocol!r}")
            times, delimiter = hello_of(ws)
            got = [recv(ws) for _ in times]
        got = [g.encode() if isinstance(g, str) else g for g in got]
        if got == lines[-5:]:
            break
        if time.monotonic() > deadline:
            fail(f"history: got {got!r}, want {lines[-5:]!r}")
    if delimiter != "\n":
        fail(f"delimiter {delimiter!r}")
    now = time.time() * 1000
    if not all(now - 60_000 < t <= now + 1000 for t in times) or times != sorted(times):
        fail(f"times of the earlier lines: {times}, now {now}")
    # Another client gets no hello and no history: lines as ever.
    with connect(url) as ws:
        pty.write(b"live\n")
        if recv(ws) != "live":
            fail("a plain client was given something before the live line")
    # What the page sends goes on exactly as sent, now: it adds its own line ending.
    with connect(url, subprotocols=[CONSOLE], max_size=None) as ws:
        hello_of(ws)
        for _ in range(5):
            recv(ws)
        sent = [b"a", b"b\r", b"c\r\n", b"d\n", b"\xfe\x00", b"", b"e" * 100_000]
        for message in sent:
            ws.send(message)
        want = b"".join(sent)
        if pty.read_exactly(len(want)) != want:
            fail("the page's messages changed on their way to the device")
        ws.send("no ending")
        if pty.read_exactly(9) != b"no ending":
            fail("a message with no line ending waited for one")
    # Nothing is added to it when the page leaves.
    bridge.wait_for("left")
    with connect(url, subprotocols=[CONSOLE]) as ws:
        ws.send("END")
        if pty.read_exactly(3) != b"END":
            fail("the bridge added to what a page sent when it left")
    # A tab that opens in the middle of a flood: the history and the live lines follow on
    # with no gap and no line twice.
    done = threading.Event()

    def flood():
        start = 0
        while not done.is_set():
            pty.write(b"".join(b"n %06d\n" % i for i in range(start, start + 200)))
            start += 200

    writer = threading.Thread(target=flood)
    writer.start()
    for _ in range(3):
        # Its queue unbounded: a client that stops reading a flood waits out its
        # close timeout for the close reply behind it.
        with connect(url, subprotocols=[CONSOLE], max_size=None, max_queue=None) as ws:
            times, _ = hello_of(ws)
            numbers = []
            for _ in range(len(times) + 300):
                message = recv(ws)
                if message.startswith("n "):
                    numbers.append(int(message[2:]))
            if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                fail(f"a gap or a repeat between the history and the live lines: {numbers[:12]}")
    done.set()
    writer.join()
    bridge.stop()
    # Lines longer than --max-line go in pieces: the history counts lines, and gives
    # each whole, from its start.
    pty3 = Pty()
    bridge = Bridge(pty3.path, "ws-listen://127.0.0.1:0,history=2", "--max-line", "16")
    port = bridge.port()
    pty3.write(b"x" * 40 + b"\n" + b"y" * 40 + b"\nshort\n")
    bridge.wait_for("(the last 2 are kept")
    deadline = time.monotonic() + PATIENCE
    while True:
        with connect(f"ws://127.0.0.1:{port}/", subprotocols=[CONSOLE]) as ws:
            times, _ = hello_of(ws)
            got = [recv(ws) for _ in times]
            if got == [b"y" * 40, "short"]:
                pty3.write(b"live\n")
                if recv(ws) != "live":
                    fail("the live line after a history of long lines")
                break
        if time.monotonic() > deadline:
            fail(f"history of long lines: {len(times)} earlier, got {got!r}")
    bridge.stop()
    # history=0: a hello with nothing earlier.
    pty2 = Pty()
    bridge = Bridge(pty2.path, "ws-listen://127.0.0.1:0,history=0")
    port = bridge.port()
    pty2.write(b"before\n")
    bridge.wait_for("no client connected; dropping lines until one connects")
    with connect(f"ws://127.0.0.1:{port}/", subprotocols=[CONSOLE]) as ws:
        times, _ = hello_of(ws)
        if times:
            fail(f"history=0 gave {len(times)} earlier lines")
        pty2.write(b"after\n")
        if recv(ws) != "after":
            fail("history=0: the live line")
    # The page names the device and this machine; uPlot is served beside it.
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=PATIENCE).read().decode()
    if f'data-device="{pty2.path}"' not in page or f"<title>{pty2.path} on " not in page:
        fail(f"the page does not name the device: {page[:400]}")
    for path, kind in [("uPlot.iife.min.js", "text/javascript"), ("uPlot.min.css", "text/css")]:
        answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/vendor/{path}", timeout=PATIENCE)
        if not answer.headers["Content-Type"].startswith(kind) or len(answer.read()) < 1000:
            fail(f"/vendor/{path}: {answer.headers['Content-Type']}")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/vendor/LICENSE.js", timeout=PATIENCE)
        fail("/vendor/ serves a file it does not list")
    except urllib.error.HTTPError as e:
        if e.code != 404:
            fail(f"an unknown file: {e.code}")
    bridge.stop()


def stuck_clients():
    """Clients that stopped reading hold the device's lines back one STALL in all, not
    one each in turn: eight that never read are dropped within a few seconds, not eight."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0,history=0")
    port = bridge.port()
    stuck = []
    for _ in range(8):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        stuck.append(sock)
    bridge.wait_for("connected (8 of")
    started = time.monotonic()
    pty.write(b"".join(b"L%06d" % i + b"z" * 200 + b"\n" for i in range(20_000)))
    while bridge.text().count("is not reading") < 8:
        if time.monotonic() - started > PATIENCE:
            fail(f"the stuck clients were not all dropped: {bridge.text()}")
        time.sleep(0.01)
    took = time.monotonic() - started
    if took > 5:
        fail(f"eight stuck clients held the device back {took:.1f} s, one after another")
    for sock in stuck:
        sock.close()
    bridge.stop()


def straight():
    """A device handing over one line per write (each goes straight to a client with
    nothing queued), a burst slow clients cannot keep up with (their writers take over,
    perhaps mid-frame, and straight writes wait behind), then paced lines again: every
    client gets every line as one message, in order. Lines over --max-line go in pieces,
    and paced ones in two writes, so fragmented messages cross from straight writes to
    queued ones and back."""
    pty = Pty()
    bridge = Bridge("--max-clients", "3", "--max-line", "16", pty.path, "ws-listen://127.0.0.1:0")
    url = f"ws://127.0.0.1:{bridge.port()}/"
    stack = contextlib.ExitStack()
    # The slow ones have a small window and take one message at a time (max_queue=1
    # stops their reading), so that their sockets fill and writes to them stop short.
    clients = [stack.enter_context(connect(url, max_size=None))]
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", bridge.port()))
        clients.append(stack.enter_context(connect(url, sock=sock, max_size=None, max_queue=1)))
    bridge.wait_for("connected (3 of")

    def line(tag, i):
        return b"%c%06d " % (tag, i) + b"x" * (i % 37)

    first = [line(ord("P"), i) for i in range(1500)]
    burst = [line(ord("B"), i) for i in range(100_000)]
    last = [line(ord("Q"), i) for i in range(1500)]
    want = first + burst + last
    got = [[], [], []]

    def drain(i):
        for n in range(len(want)):
            message = clients[i].recv(timeout=PATIENCE)
            got[i].append(message.encode() if isinstance(message, str) else message)
            if i and n % 50 == 0:
                time.sleep(0.0005 * i)

    readers = [threading.Thread(target=drain, args=(i,)) for i in range(3)]
    for r in readers:
        r.start()

    def paced(lines):
        for l in lines:
            whole = l + b"\n"
            half = len(whole) // 2 if len(l) > 16 else len(whole)
            pty.write(whole[:half])
            if half < len(whole):
                time.sleep(0.0002)
                pty.write(whole[half:])
            time.sleep(0.0002)

    paced(first)
    pty.write(b"".join(l + b"\n" for l in burst))
    paced(last)
    for r in readers:
        r.join(PATIENCE * 2)
    for i in range(3):
        if got[i] != want:
            at = next((n for n, (a, b) in enumerate(zip(got[i], want)) if a != b), None)
            fail(f"client {i}: {len(got[i])} of {len(want)} lines, the first different at {at}: "
                 f"{got[i][at] if at is not None else None!r}")
    stack.close()
    bridge.stop()
    if "dropped" in bridge.text() or "not reading" in bridge.text():
        fail(f"a client was dropped: {bridge.text()}")


SCENARIOS = {f.__name__: f for f in [listen_exact, fanout, guarded, client, chain, echo, drain, hostile,
                                     rule_breakers, crowded, cut_lines, stalled_client,
                                     console_protocol, stuck_clients, straight]}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print("ok")
