#!/usr/bin/env python3
"""Real peers for the hub tests: one pty device, several peers at once.

Usage: hub_peer.py SCENARIO BRIDGE_BINARY

Each scenario plays the device on a pty master and every peer with a real client: a
TCP socket, Python's `websockets`, and mosquitto's own clients against a real
mosquitto started here on a free loopback port. It checks every byte and exits 0, or
1 with one line saying what went wrong. Every wait has a deadline.
"""

import atexit
import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_peer import PATIENCE, Bridge, Pty, connect, fail, free_port  # noqa: E402


def ports(bridge, count):
    """The ports the bridge's listeners took, in the order of the command line (they
    open at once, so their log lines come in any order)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        found = re.findall(r"(\S+): listening on [^ ]*:(\d+)", bridge.text())
        if len(found) >= count:
            args = bridge.proc.args
            return [int(port) for _, port in sorted(found[:count], key=lambda f: args.index(f[0]))]
        if bridge.proc.poll() is not None or time.monotonic() > deadline:
            fail(f"{count} listeners did not start: {bridge.text()}")
        time.sleep(0.01)


class Mosquitto:
    """A real broker on a free loopback port, for this scenario only."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sb-hub-")
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.proc.kill)  # also when a check fails
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    fail("mosquitto did not listen")
                time.sleep(0.01)

    def url(self, settings):
        return f"mqtt://127.0.0.1:{self.port},{settings}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=PATIENCE)


class Collector:
    """Reads everything a stream gives, on a thread of its own."""

    def __init__(self, read):
        self.data = bytearray()
        self.lock = threading.Lock()
        self.read = read
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                chunk = self.read()
            except Exception:  # the peer closed; what was read stays
                return
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def lines(self):
        with self.lock:
            return bytes(self.data).split(b"\n")[:-1]

    def wait_lines(self, count, what):
        deadline = time.monotonic() + PATIENCE
        while len(self.lines()) < count:
            if time.monotonic() > deadline:
                fail(f"{what}: {len(self.lines())} of {count} lines")
            time.sleep(0.01)
        return self.lines()


def mqtt_sub(broker, topic):
    """mosquitto_sub printing each payload as hex on a line of its own."""
    proc = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-h", "127.0.0.1",
                             "-t", topic, "-q", "1", "-F", "%x"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return proc, Collector(lambda: proc.stdout.read1(65536))


def payload(tag, i):
    """A line body with the bytes that break careless bridges: NUL, CR, 0xFF, bad UTF-8."""
    return b"%s %05d \x00\r\xff\xc3(" % (tag, i) + bytes([i % 250 + 1 if i % 250 + 1 != 10 else 11])


def sync(pty, ready):
    """Writes `sync` lines to the device until `ready()` says every peer hears them."""
    deadline = time.monotonic() + PATIENCE
    while not ready():
        if time.monotonic() > deadline:
            fail("the peers never heard the device")
        pty.write(b"sync\n")
        time.sleep(0.05)


def after_sync(lines):
    """The lines after the last `sync` line (hex-encoded or not)."""
    marks = [i for i, line in enumerate(lines) if line in (b"sync", b"73796e63")]
    return lines[marks[-1] + 1:] if marks else lines


def three_peers():
    """A pty device with tcp-listen, ws-listen and mqtt peers: every line to every peer,
    and floods from all three to the device at once, each line whole, in its order."""
    broker = Mosquitto()
    pty = Pty()
    # The device's burst of 2,000 lines fits in each peer's queue: the test is of bytes
    # and order (a peer that falls behind has a test of its own).
    bridge = Bridge("--queue", "10000", pty.path, "tcp-listen://127.0.0.1:0",
                    "ws-listen://127.0.0.1:0", broker.url("pub=hub/out,sub=hub/in,qos=1"))
    tcp_port, ws_port = ports(bridge, 2)
    bridge.wait_for("bridging ")
    device = Collector(lambda: os.read(pty.master, 65536) if wait_readable(pty.master) else b"")
    tcp = socket.create_connection(("127.0.0.1", tcp_port))
    tcp_got = Collector(lambda: tcp.recv(65536))
    ws = connect(f"ws://127.0.0.1:{ws_port}/", max_size=None).__enter__()
    ws_got = Collector(lambda: as_bytes(ws.recv(timeout=PATIENCE * 2)) + b"\n")
    sub, mqtt_got = mqtt_sub(broker, "hub/out")
    bridge.wait_for("connected (1 of")
    sync(pty, lambda: all(b"sync" in c.lines() or b"73796e63" in c.lines()
                          for c in (tcp_got, ws_got, mqtt_got)))
    # Device to every peer, byte for byte.
    count = 2000
    sent = [payload(b"dev", i) for i in range(count)]
    pty.write(b"".join(line + b"\n" for line in sent))
    for name, got, hexed in (("tcp", tcp_got, False), ("ws", ws_got, False), ("mqtt", mqtt_got, True)):
        deadline = time.monotonic() + PATIENCE
        while len(after_sync(got.lines())) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = after_sync(got.lines())
        if hexed:
            lines = [bytes.fromhex(line.decode()) for line in lines]
        if lines != sent:
            bad = next((i for i, (a, b) in enumerate(zip(lines, sent)) if a != b), len(lines))
            fail(f"device -> {name}: {len(lines)} lines, first difference at {bad}: "
                 f"{lines[bad:bad + 1]!r} for {sent[bad:bad + 1]!r}")
    # Every peer floods the device at once.
    flood = 3000
    floods = {tag: [b"%s %05d " % (tag, i) + b"x" * (i % 70) for i in range(flood)]
              for tag in (b"tcp", b"ws", b"mqtt")}

    def tcp_flood():
        data = b"".join(line + b"\n" for line in floods[b"tcp"])
        at = 0
        while at < len(data):  # odd-sized writes: lines split anywhere
            tcp.sendall(data[at:at + 777])
            at += 777

    def ws_flood():
        for line in floods[b"ws"]:
            ws.send(line)

    def mqtt_flood():
        pub = subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-h", "127.0.0.1",
                              "-t", "hub/in", "-q", "1", "-l"],
                             input=b"".join(line + b"\n" for line in floods[b"mqtt"]),
                             timeout=PATIENCE, capture_output=True)
        if pub.returncode != 0:
            fail(f"mosquitto_pub: {pub.stderr!r}")

    threads = [threading.Thread(target=f) for f in (tcp_flood, ws_flood, mqtt_flood)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=PATIENCE)
    lines = device.wait_lines(3 * flood, "peers -> device")
    if len(lines) != 3 * flood:
        fail(f"peers -> device: {len(lines)} lines, want {3 * flood}")
    for tag, want in floods.items():
        got = [line for line in lines if line.split(b" ")[0] == tag]
        if got != want:
            stray = [line[:40] for line in lines if line.split(b" ")[0] not in floods][:3]
            fail(f"{tag.decode()} -> device: {len(got)} lines in order of {len(want)}; "
                 f"mixed or cut lines: {stray!r}")
    bridge.stop()
    log = bridge.text()
    for name in ("tcp-listen://127.0.0.1:0", "ws-listen://127.0.0.1:0"):
        if f"{name} -> {pty.path}: {flood} lines" not in log:
            fail(f"no summary line for {name}: {log}")
    if f"all peers -> {pty.path}: {3 * flood} lines" not in log:
        fail(f"no total in the summary: {log}")
    for peer in ("tcp-listen://127.0.0.1:0", "ws-listen://127.0.0.1:0", "mqtt://"):
        if not re.search(re.escape(f"{pty.path} -> {peer}") + r"[^ ]*: \d+ lines, \d+ bytes, 0 dropped", log):
            fail(f"no summary line for {pty.path} -> {peer}: {log}")
    ws.close()
    tcp.close()
    sub.terminate()
    broker.stop()


def wait_readable(fd):
    while True:
        if select.select([fd], [], [], 0.5)[0]:
            return True


def as_bytes(message):
    """A WebSocket message as bytes: text frames come as str."""
    return message.encode() if isinstance(message, str) else message


class Server:
    """A plain TCP server for a tcp:// peer: `rcvbuf` shrinks what it can hold unread."""

    def __init__(self, port=0, rcvbuf=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(4)
        self.sock.settimeout(PATIENCE)
        self.port = self.sock.getsockname()[1]

    def accept(self):
        conn, _ = self.sock.accept()
        conn.settimeout(PATIENCE)
        return conn


def summary(log, frm, to):
    """`frm -> to: N lines, M bytes, K dropped` from the log, as (N, K)."""
    found = re.search(re.escape(f"{frm} -> {to}: ") + r"(\d+) lines?, \d+ bytes?, (\d+) dropped", log)
    if not found:
        fail(f"no summary line for {frm} -> {to}: {log}")
    return int(found.group(1)), int(found.group(2))


def stuck_peer():
    """A peer that stops reading: the device is never held back for long, the other peer
    gets every line, and the stuck one's misses are counted."""
    pty = Pty()
    server = Server(rcvbuf=4096)
    peer = f"tcp://127.0.0.1:{server.port}"
    bridge = Bridge(pty.path, "tcp-listen://127.0.0.1:0", peer)
    [port] = ports(bridge, 1)
    stuck = server.accept()  # and never read from
    healthy = socket.create_connection(("127.0.0.1", port))
    got = Collector(lambda: healthy.recv(65536))
    bridge.wait_for("connected (1 of")
    sync(pty, lambda: b"sync" in got.lines())
    total, line = 40_000, b"x" * 99 + b"\n"
    started = time.monotonic()
    for _ in range(total // 200):  # about 40,000 lines a second
        pty.write(line * 200)
        time.sleep(0.005)
    took = time.monotonic() - started
    lines = got.wait_lines(total + 1, "the healthy peer")
    if after_sync(lines) != [line[:-1]] * total:
        fail(f"the healthy peer: {len(after_sync(lines))} lines of {total}, or not whole")
    if "not keeping up" not in bridge.text():
        fail(f"no word of the stuck peer: {bridge.text()}")
    bridge.stop()
    log = bridge.text()
    written, dropped = summary(log, pty.path, peer)
    received = b""
    stuck.settimeout(5)
    with contextlib.suppress(OSError):
        while chunk := stuck.recv(1 << 20):
            received += chunk
    whole = received.count(b"\n")
    if dropped == 0 or whole != written - 1 + 1 or written + dropped > total + 1:
        fail(f"stuck peer: {whole} lines reached it, summary says {written} written and "
             f"{dropped} dropped of {total + 1}: {log}")
    print(f"device writes took {took:.2f} s; the stuck peer missed {dropped} lines", file=sys.stderr)


def peer_comes_back():
    """With --reconnect a peer that goes away is reopened while the other goes on; its
    lines wait for it meanwhile."""
    pty = Pty()
    server = Server()
    peer = f"tcp://127.0.0.1:{server.port}"
    bridge = Bridge("--reconnect", pty.path, "tcp-listen://127.0.0.1:0", peer)
    [port] = ports(bridge, 1)
    first = server.accept()
    healthy = socket.create_connection(("127.0.0.1", port))
    got = Collector(lambda: healthy.recv(65536))
    bridge.wait_for("connected (1 of")
    # The peer goes away, and cannot be reached for a while.
    first.close()
    server.sock.close()
    bridge.wait_for("reconnecting")
    pty.write(b"while away\n")
    if got.wait_lines(1, "the other peer")[-1] != b"while away":
        fail(f"the other peer: {got.lines()!r}")
    server = Server(port=server.port)
    second = server.accept()
    if second.recv(100) != b"while away\n":
        fail("the line for the peer that was away did not wait for it")
    second.sendall(b"back\n")
    if pty.read_exactly(5) != b"back\n":
        fail("the peer that came back is not heard")
    bridge.stop()
    if "back after" not in bridge.text():
        fail(f"no word of the peer coming back: {bridge.text()}")


def peer_fails():
    """Without --reconnect a peer that goes away ends the bridge with exit 1."""
    pty = Pty()
    server = Server()
    peer = f"tcp://127.0.0.1:{server.port}"
    bridge = Bridge(pty.path, "tcp-listen://127.0.0.1:0", peer)
    server.accept().close()
    code = bridge.exit_code()
    if code != 1 or f"{peer}: port closed" not in bridge.text():
        fail(f"a peer that closed: exit {code}: {bridge.text()}")


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith(field + ":"):
                return int(row.split()[1])
    fail(f"no {field} for {pid}")


def ten_peers():
    """Threads and memory grow by a fixed, small amount per peer."""
    seen = {}
    for peers in (1, 10):
        pty = Pty()
        bridge = Bridge(pty.path, *["tcp-listen://127.0.0.1:0"] * peers)
        ports(bridge, peers)
        bridge.wait_for("bridging ")
        pty.write(b"x" * 99 + b"\n")  # every path once, so lazily made things exist
        time.sleep(0.2)
        seen[peers] = (status(bridge.proc.pid, "Threads"), status(bridge.proc.pid, "VmRSS"))
        bridge.stop()
    threads = (seen[10][0] - seen[1][0]) / 9
    memory = (seen[10][1] - seen[1][1]) / 9
    print(f"per peer: {threads:.1f} threads, {memory:.0f} KiB", file=sys.stderr)
    # A tcp-listen peer: its accepting thread and its writer.
    if threads != 2 or memory > 256:
        fail(f"per peer: {threads} threads and {memory:.0f} KiB ({seen})")


def raw_and_partial_lines():
    """--raw and --flush-after work in a hub: bytes as they come, a prompt to every peer."""
    for flags, data, want in ((["--raw"], b"\x00\xff no newline", b"\x00\xff no newline"),
                              (["--flush-after", "50"], b"prompt> ", b"prompt> ")):
        pty = Pty()
        bridge = Bridge(*flags, pty.path, "tcp-listen://127.0.0.1:0", "tcp-listen://127.0.0.1:0")
        socks = [socket.create_connection(("127.0.0.1", p)) for p in ports(bridge, 2)]
        for sock in socks:
            sock.settimeout(PATIENCE)
        deadline = time.monotonic() + PATIENCE
        while bridge.text().count("connected (1 of") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        pty.write(data)
        for i, sock in enumerate(socks):
            got = b""
            while len(got) < len(want):
                got += sock.recv(4096)
            if got != want:
                fail(f"{flags} peer {i}: {got!r}")
        socks[1].sendall(b"\x01\x02" if flags == ["--raw"] else b"cmd\n")
        back = pty.read_exactly(2 if flags == ["--raw"] else 4)
        if back not in (b"\x01\x02", b"cmd\n"):
            fail(f"{flags} peer -> device: {back!r}")
        bridge.stop()


def stuck_peers_at_the_end():
    """Stuck peers delay neither a stop (30 of them: within a second and a bit) nor the
    end of stdin as a peer (within its stall bound), and stdin's lines reach the device."""
    pty = Pty()
    servers = [Server(rcvbuf=4096) for _ in range(30)]
    bridge = Bridge(pty.path, *[f"tcp://127.0.0.1:{s.port}" for s in servers])
    conns = [s.accept() for s in servers]
    bridge.wait_for("bridging ")
    for _ in range(50):  # 5 MB: every peer's buffers fill, then they lag
        pty.write(b"y" * 99999 + b"\n")
    bridge.wait_for("not keeping up")
    started = time.monotonic()
    bridge.stop()
    took = time.monotonic() - started
    if took > 1.5:
        fail(f"a stop with 30 stuck peers took {took:.2f} s")
    for conn in conns:
        conn.close()
    # stdin as a peer, and a stuck peer: stdin's end ends the bridge all the same.
    server = Server(rcvbuf=4096)
    proc = subprocess.Popen([sys.argv[2], pty.path, "-", f"tcp://127.0.0.1:{server.port}"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    conn = server.accept()
    for _ in range(50):
        pty.write(b"z" * 99999 + b"\n")
    proc.stdin.write(b"from stdin\n")
    proc.stdin.close()
    want = b"from stdin\n"
    if pty.read_exactly(len(want)) != want:
        fail("stdin's line did not reach the device")
    try:
        code = proc.wait(timeout=PATIENCE / 4)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("stdin ended but a stuck peer kept the hub running")
    if code != 0:
        fail(f"exit {code} at the end of stdin: {proc.stderr.read().decode(errors='replace')}")
    conn.close()


def hanging_listener():
    """A loopback port whose connects hang: a listener that never accepts, its backlog
    full (further SYNs are dropped)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(sock.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    return sock, fillers


def opens_at_once():
    """Endpoints open at once: a peer whose connect hangs does not delay the news that
    another cannot be opened."""
    pty = Pty()
    hang, fillers = hanging_listener()
    refused = free_port()
    started = time.monotonic()
    bridge = Bridge(pty.path, f"tcp://127.0.0.1:{hang.getsockname()[1]}", f"tcp://127.0.0.1:{refused}")
    code = bridge.exit_code()
    took = time.monotonic() - started
    if code != 3 or f"tcp://127.0.0.1:{refused}" not in bridge.text():
        fail(f"exit {code}: {bridge.text()}")
    if took > 5:
        fail(f"the refused peer was told after {took:.1f} s, behind the hanging one")
    hang.close()
    for filler in fillers:
        filler.close()


SCENARIOS = {f.__name__: f for f in [three_peers, stuck_peer, peer_comes_back, peer_fails, ten_peers,
                                     raw_and_partial_lines, stuck_peers_at_the_end, opens_at_once]}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print("ok")
