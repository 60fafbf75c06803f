#!/usr/bin/env python3
"""Real peers for the RFC 2217 tests: pyserial's rfc2217:// client, esptool, and raw
telnet sockets that lie.

Usage: rfc2217_peer.py SCENARIO BRIDGE_BINARY

Each scenario plays the device on a pty master and the network side with a real
client, checks every byte and setting, and exits 0, or 1 with one line saying what went
wrong. Every wait has a deadline.
"""

import fcntl
import os
import re
import socket
import struct
import subprocess
import sys
import time

import serial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_peer import Collector  # noqa: E402
from ws_peer import PATIENCE, Bridge, Pty, fail  # noqa: E402

IAC, SB, SE, WILL, WONT, DO, DONT = 255, 250, 240, 251, 252, 253, 254
COM_PORT = 44
# _IOR('T', 0x2A, struct termios2): the same number on x86_64 and aarch64.
TCGETS2 = 0x802C542A


def speed(fd):
    """The pty's baud rate, as termios2 holds it (the bridge sets any rate that way)."""
    raw = fcntl.ioctl(fd, TCGETS2, bytes(44))
    return struct.unpack_from("I", raw, 40)[0]


def wait_until(what, check):
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            fail(f"never: {what}")
        time.sleep(0.01)


def read_exactly(client, n):
    got = b""
    deadline = time.monotonic() + PATIENCE
    while len(got) < n and time.monotonic() < deadline:
        got += client.read(n - len(got))
    return got


def start(pty, *settings):
    bridge = Bridge("-v", f"{pty.path},baud=9600", "rfc2217-listen://127.0.0.1:0", *settings)
    return bridge, bridge.port()


def pyserial():
    """Open with no ign_set_control, settings reach the pty, every byte both ways,
    purge, modem lines, a needless re-apply never happens, settings restored."""
    pty = Pty()
    bridge, port = start(pty)
    url = f"rfc2217://127.0.0.1:{port}"
    client = serial.serial_for_url(url, baudrate=115200, timeout=1)
    if speed(pty.slave) != 115200:
        fail(f"the pty runs at {speed(pty.slave)}, not 115200")
    # Every byte value, 0xFF runs and no newline at the end, both ways.
    data = bytes(range(256)) * 64 + b"\xff" * 1000 + b"\r\0\xff"
    client.write(data)
    got = pty.read_exactly(len(data))
    if got != data:
        fail(f"client -> pty: {len(got)} bytes differ from {len(data)} sent")
    pty.write(data)
    got = read_exactly(client, len(data))
    if got != data:
        fail(f"pty -> client: {len(got)} of {len(data)} bytes, or different")
    # The modem state was notified at connect (a pty's lines read as off).
    if (client.cts, client.dsr, client.ri, client.cd) != (False, False, False, False):
        fail("a pty's modem lines should read as off")
    client.reset_input_buffer()
    client.reset_output_buffer()
    client.dtr = False
    client.rts = False
    client.break_condition = True
    client.break_condition = False
    client.baudrate = 57600
    if speed(pty.slave) != 57600:
        fail(f"baud change: the pty runs at {speed(pty.slave)}")
    # pyserial sends every setting again on each timeout change: none is applied.
    for i in range(50):
        client.timeout = 0.5 + i / 1000
    sets = re.findall(r"set the port to (.*)", bridge.text())
    if sets != ["115200 8N1", "57600 8N1"]:
        fail(f"settings applied {sets}, expected two changes: {bridge.text()}")
    client.close()
    bridge.wait_for("the port has its own settings back")
    if speed(pty.slave) != 9600:
        fail(f"the port was not given its 9600 back: {speed(pty.slave)}")
    bridge.stop()


def two_clients():
    """The first client controls the port; the second watches, then takes over."""
    pty = Pty()
    bridge, port = start(pty, "--max-clients", "2")
    url = f"rfc2217://127.0.0.1:{port}"
    first = serial.serial_for_url(url, baudrate=115200, timeout=1)
    bridge.wait_for("controls the port")
    second = serial.serial_for_url(url, baudrate=115200, timeout=1)
    bridge.wait_for("watches")
    pty.write(b"to both\xff")
    for client in (first, second):
        got = read_exactly(client, 8)
        if got != b"to both\xff":
            fail(f"fan-out: {got!r}")
    try:
        second.baudrate = 300
        fail("a watcher changed the baud rate")
    except ValueError:
        pass  # "remote rejected value": it was answered with the rate in effect
    if speed(pty.slave) != 115200:
        fail(f"a watcher's change reached the port: {speed(pty.slave)}")
    first.close()
    wait_until("the second client controls", lambda: try_baud(second, 300))
    if speed(pty.slave) != 300:
        fail(f"the new controller's change: {speed(pty.slave)}")
    second.close()
    bridge.wait_for("the port has its own settings back")
    bridge.stop()


def try_baud(client, baud):
    try:
        client.baudrate = baud
        return True
    except ValueError:
        return False


def raw_client(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.settimeout(5)
    return sock


def recv_until(sock, needle):
    got = b""
    deadline = time.monotonic() + PATIENCE
    while needle not in got:
        if time.monotonic() > deadline:
            fail(f"never got {needle!r}: {got[-200:]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            fail(f"closed before {needle!r}: {got[-200:]!r}")
        got += chunk
    return got


def sub(code, *payload):
    body = bytes([COM_PORT, code, *payload]).replace(b"\xff", b"\xff\xff")
    return bytes([IAC, SB]) + body + bytes([IAC, SE])


def hostile():
    """Lying telnet peers: endless subnegotiations, negotiation floods, commands cut
    short, garbage: each refused or ignored, the bridge serves the next client."""
    pty = Pty()
    bridge, port = start(pty, "--max-clients", "4")
    # An endless subnegotiation: that client is dropped, with a reason.
    sock = raw_client(port)
    sock.sendall(bytes([IAC, SB, COM_PORT]) + b"x" * 100_000)
    bridge.wait_for("subnegotiation over 256 bytes")
    sock.close()
    # A flood of negotiation for options nobody has: each refused once, no loop.
    sock = raw_client(port)
    flood = b"".join(bytes([IAC, verb, option]) for option in range(100, 200)
                     for verb in (WILL, DO, WONT, DONT)) * 20
    sock.sendall(flood)
    # Short, unknown and server-side commands are ignored; a query still answers.
    sock.sendall(sub(1, 0, 0) + sub(50, 1) + sub(101, 0, 0, 0, 1) + bytes([IAC, SB, 24, 1, IAC, SE]))
    sock.sendall(sub(1, 0, 0, 0, 0))
    got = recv_until(sock, bytes([IAC, SB, COM_PORT, 101, 0, 0, 0x25, 0x80, IAC, SE]))
    refusals = got.count(bytes([IAC, DONT])) + got.count(bytes([IAC, WONT]))
    if refusals < 100 * 2 or refusals > 100 * 2 * 20:
        fail(f"{refusals} refusals for a flood over 100 options")
    # Data still flows both ways, 0xFF doubled.
    sock.sendall(b"abc\xff\xff\xff\xffdef")
    if pty.read_exactly(8) != b"abc\xff\xffdef":
        fail("data after the flood")
    pty.write(b"\xffxyz")
    recv_until(sock, b"\xff\xffxyz")
    # A subnegotiation cut off by the client leaving, and a client that says WONT and
    # DONT to everything: no harm done.
    cut = raw_client(port)
    cut.sendall(bytes([IAC, SB, COM_PORT, 1, 0, IAC]))
    cut.close()
    rude = raw_client(port)
    rude.sendall(b"".join(bytes([IAC, verb, o]) for o in range(256) for verb in (WONT, DONT)))
    rude.sendall(b"hi")
    if pty.read_exactly(2) != b"hi":
        fail("data from the rude client")
    rude.close()
    sock.close()
    # The bridge is still up and serves a real client.
    client = serial.serial_for_url(f"rfc2217://127.0.0.1:{port}", baudrate=19200, timeout=1)
    if speed(pty.slave) != 19200:
        fail(f"after the hostile clients: {speed(pty.slave)}")
    client.close()
    bridge.stop()
    if "panicked" in bridge.text():
        fail(bridge.text())


def esptool():
    """esptool gets through connect, settings and its reset attempts with no protocol
    error; a pty has no chip, so it then finds none. With reset=esp, its reset runs in
    the bridge."""
    for reset in ["reset=pass", "reset=esp"]:
        run_esptool(reset)


def run_esptool(reset):
    pty = Pty()
    bridge = Bridge("-v", f"{pty.path},baud=9600", f"rfc2217-listen://127.0.0.1:0,{reset}")
    port = bridge.port()
    run = subprocess.run(["esptool", "--port", f"rfc2217://127.0.0.1:{port}", "--connect-attempts",
                          "1", "chip-id"], capture_output=True, text=True, timeout=PATIENCE)
    out = run.stdout + run.stderr
    if run.returncode == 0:
        fail(f"esptool found a chip on a pty: {out}")
    for error in ["timeout while waiting for option", "remote rejected value", "Remote does not",
                  "Traceback", "SerialException", "could not open"]:
        if error.lower() in out.lower():
            fail(f"esptool: {error!r}: {out}")
    if "No serial data received" not in out and "Failed to connect" not in out:
        fail(f"esptool did not get as far as talking to the chip: {out}")
    # Its sync frames reached the pty whole: SLIP frames (0xC0 ... 0xC0), no newline.
    bridge.wait_for("the port has its own settings back")
    bridge.stop()
    if not re.search(r"-> /dev/pts/\d+: [1-9]\d* bytes", bridge.text()):
        fail(f"nothing reached the pty: {bridge.text()}")
    if (reset == "reset=esp") != ("reset into the bootloader (reset=esp)" in bridge.text()):
        fail(f"{reset}: {bridge.text()}")


def ser2net(pty):
    """ser2net serving `pty` over RFC 2217 on a free loopback port."""
    from ws_peer import free_port
    port = free_port()
    conf = f"/tmp/sb-ser2net-{os.getpid()}-{port}.yaml"
    with open(conf, "w") as f:
        f.write(f"connection: &con0\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                f"  connector: serialdev,{pty.path},9600n81,local\n")
    proc = subprocess.Popen(["ser2net", "-n", "-c", conf, "-P", conf + ".pid"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                fail("ser2net did not start")
            time.sleep(0.05)
    return proc, port


def lines_both_ways(device, local, client):
    data = b"from here \xff\x00\r one\n"
    local.write(data)
    if device.read_exactly(len(data)) != data:
        fail("local pty -> remote port")
    data = b"from there \xff\xfe\n"
    device.write(data)
    if local.read_exactly(len(data)) != data:
        fail(f"remote port -> local pty: {client.text()}")


def client():
    """rfc2217:// against another bridge's rfc2217-listen:// and against ser2net: the
    settings reach the remote port, lines cross both ways byte for byte."""
    device, local = Pty(), Pty()
    server = Bridge("-v", f"{device.path},baud=9600", "rfc2217-listen://127.0.0.1:0")
    port = server.port()
    bridge = Bridge("-v", f"rfc2217://127.0.0.1:{port},baud=57600,dtr=off,rts=on", local.path)
    bridge.wait_for("bridging")
    if speed(device.slave) != 57600:
        fail(f"the remote port runs at {speed(device.slave)}")
    lines_both_ways(device, local, bridge)
    bridge.stop()
    server.wait_for("the port has its own settings back")
    server.stop()
    device, local = Pty(), Pty()
    proc, port = ser2net(device)
    try:
        bridge = Bridge("-v", f"rfc2217://127.0.0.1:{port},baud=115200", local.path)
        bridge.wait_for("bridging")
        if speed(device.slave) != 115200:
            fail(f"through ser2net the port runs at {speed(device.slave)}")
        lines_both_ways(device, local, bridge)
        bridge.stop()
    finally:
        proc.kill()


def client_refused():
    """A server that takes another value than asked, one that speaks no RFC 2217, and
    one that goes away: exit 3 at start with what it answered, exit 1 later, and with
    --reconnect the settings sent again."""
    device, local = Pty(), Pty()
    server = Bridge(f"{device.path},baud=9600", "rfc2217-listen://127.0.0.1:0")
    port = server.port()
    # A pty keeps 8 data bits whatever it is told: the server says so.
    bridge = Bridge(f"rfc2217://127.0.0.1:{port},data=5", local.path)
    code = bridge.exit_code()
    if code != 3 or "the server refused data=5: it answered data 8" not in bridge.text():
        fail(f"exit {code}: {bridge.text()}")
    # A server that speaks plain TCP.
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        bridge = Bridge(f"rfc2217://127.0.0.1:{plain.getsockname()[1]}", local.path)
        code = bridge.exit_code()
        if code != 3 or "does not speak RFC 2217" not in bridge.text():
            fail(f"exit {code}: {bridge.text()}")
    # A telnet server that refuses COM-PORT-OPTION: at once, not after the wait.
    # One that agrees and then answers nothing: the setting named.
    for behaviour, expected in [("refuse", "refused COM-PORT-OPTION"),
                                ("silent", "no answer to baud=9600 within 5 s")]:
        with socket.socket() as liar:
            liar.bind(("127.0.0.1", 0))
            liar.listen()
            bridge = Bridge(f"rfc2217://127.0.0.1:{liar.getsockname()[1]}", local.path)
            conn, _ = liar.accept()
            reply = bytes([IAC, WONT, COM_PORT, IAC, DONT, COM_PORT]) if behaviour == "refuse" \
                else bytes([IAC, DO, COM_PORT, IAC, WILL, COM_PORT])
            started = time.monotonic()
            conn.sendall(reply)
            code = bridge.exit_code()
            took = time.monotonic() - started
            conn.close()
            if code != 3 or expected not in bridge.text():
                fail(f"{behaviour}: exit {code}: {bridge.text()}")
            if behaviour == "refuse" and took > 3:
                fail(f"a refusal took {took:.1f} s to be believed")
    # The server goes away: exit 1 without --reconnect.
    bridge = Bridge(f"rfc2217://127.0.0.1:{port}", local.path)
    bridge.wait_for("bridging")
    server.stop()
    if bridge.exit_code() != 1:
        fail(f"a server that went away: {bridge.text()}")
    # With --reconnect, the settings are sent again to the server that comes back.
    server = Bridge(f"{device.path},baud=9600", f"rfc2217-listen://127.0.0.1:{port}")
    server.wait_for("listening on")
    bridge = Bridge("--reconnect", f"rfc2217://127.0.0.1:{port},baud=38400", local.path)
    bridge.wait_for("connected to")
    server.stop()
    bridge.wait_for("reconnecting")
    server = Bridge(f"{device.path},baud=9600", f"rfc2217-listen://127.0.0.1:{port}")
    bridge.wait_for("back after")
    wait_until("the baud rate sent again", lambda: speed(device.slave) == 38400)
    lines_both_ways(device, local, bridge)
    bridge.stop()
    server.stop()


def gensiot():
    """ser2net's gensiot as a client of rfc2217-listen://: bytes both ways."""
    device = Pty()
    server = Bridge("-v", f"{device.path},baud=9600", "rfc2217-listen://127.0.0.1:0")
    port = server.port()
    proc = subprocess.Popen(["gensiot", f"telnet(rfc2217),tcp,127.0.0.1,{port}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        server.wait_for("connected")
        data = bytes(range(256))
        proc.stdin.write(data)
        proc.stdin.flush()
        if device.read_exactly(256) != data:
            fail("gensiot -> port")
        device.write(data)
        got = b""
        deadline = time.monotonic() + PATIENCE
        while len(got) < 256 and time.monotonic() < deadline:
            got += os.read(proc.stdout.fileno(), 256 - len(got))
        if got != data:
            fail(f"port -> gensiot: {got!r}")
    finally:
        proc.kill()
    server.stop()


def pty_settings():
    """pty:LINK across from rfc2217://: the terminal starts with the remote port's
    settings, and a program that opens it and changes them changes the remote port's;
    bytes cross both ways as through any pty."""
    device = Pty()
    server = Bridge("-v", f"{device.path},baud=9600", "rfc2217-listen://127.0.0.1:0")
    port = server.port()
    link = f"/tmp/sb-rfc2217-pty-{os.getpid()}"
    bridge = Bridge("-v", f"pty:{link}", f"rfc2217://127.0.0.1:{port},baud=115200")
    bridge.wait_for("a program's settings go on")
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    try:
        if speed(fd) != 115200:
            fail(f"the terminal starts at {speed(fd)}, not the remote port's 115200")
    finally:
        os.close(fd)
    program = serial.Serial(link, 115200, timeout=1)
    for baud in [57600, 1200, 230400]:
        program.baudrate = baud
        wait_until(f"the remote port at {baud}", lambda: speed(device.slave) == baud)
    # A flasher's SLIP frame: binary, no newline at the end; it passes as it comes.
    data = b"\xc0" + bytes(range(256)) + b"\xdb\xdc\xc0"
    program.write(data)
    if device.read_exactly(len(data)) != data:
        fail("program -> remote port")
    device.write(data)
    if read_exactly(program, len(data)) != data:
        fail("remote port -> program")
    program.close()
    bridge.stop()
    server.stop()


def baud_answer(sock):
    """The server's answer to SET-BAUDRATE, from a raw telnet socket."""
    got = b""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = baud_answers(telnet_decode(got)[1])
        if found:
            return found[0]
        chunk = sock.recv(4096)
        if not chunk:
            return None  # refused: the place was not free yet
        got += chunk
    fail(f"no answer to SET-BAUDRATE: {got!r}")


def handover():
    """A client that comes right after the last one left is alone: it controls the
    port (with one place, it is either refused or served alone, never a watcher), and
    the first client's settings were undone before it."""
    pty = Pty()
    bridge, port = start(pty)
    def set_alone(baud):
        """Connects (again while refused: the place is not free yet), asks for `baud`,
        leaves: the answer."""
        while True:
            sock = raw_client(port)
            sock.sendall(bytes([IAC, WILL, COM_PORT]) + sub(1, *struct.pack(">I", baud)))
            try:
                answer = baud_answer(sock)
            except OSError:
                answer = None
            sock.close()
            if answer is not None:
                return answer

    for _ in range(30):
        for baud in [115200, 57600]:
            answer = set_alone(baud)
            if answer != baud:
                fail(f"a client alone asked {baud} and was answered {answer}: {bridge.text()}")
    bridge.stop()
    if "watches" in bridge.text():
        fail(f"a lone client watched: {bridge.text()}")


def telnet_decode(stream):
    """The data and the subnegotiation bodies in a server's telnet `stream`, up to a
    command cut off by the end of what came so far; fails on a lone 0xFF or anything
    else that is not telnet."""
    data, subs, i = bytearray(), [], 0
    while i < len(stream):
        at = stream.find(b"\xff", i)
        if at < 0:
            data += stream[i:]
            break
        data += stream[i:at]
        command = stream[at + 1:at + 2]
        if not command:
            break
        if command == b"\xff":
            data.append(IAC)
            i = at + 2
        elif command == bytes([SB]):
            end = stream.find(bytes([IAC, SE]), at + 2)
            if end < 0:
                break
            body = stream[at + 2:end]
            if b"\xff" in body.replace(b"\xff\xff", b""):
                fail(f"a subnegotiation cut or broken at {at}: {stream[at:at + 40]!r}")
            subs.append(body.replace(b"\xff\xff", b"\xff"))
            i = end + 2
        elif command and command[0] in (WILL, WONT, DO, DONT):
            i = at + 3
        else:
            fail(f"not telnet at {at}: {stream[at:at + 20]!r}")
    return bytes(data), subs


def baud_answers(subs):
    """The SET-BAUDRATE answers among subnegotiation bodies: their rates."""
    answers = [s for s in subs if s[:2] == bytes([COM_PORT, 101])]
    if any(len(s) != 6 for s in answers):
        fail(f"a SET-BAUDRATE answer of the wrong length: {answers}")
    return [struct.unpack(">I", s[2:])[0] for s in answers]


class Reading(Collector):
    """A client's socket read on a thread of its own (see Collector); while `slow`, 2
    KiB at a time with a pause between, so the server finds its socket full."""

    def __init__(self, sock, slow=False):
        self.slow = slow
        sock.settimeout(None)
        super().__init__(lambda: self.recv(sock))

    def recv(self, sock):
        if self.slow:
            time.sleep(0.0005)
            return sock.recv(2048)
        return sock.recv(65536)

    def decoded(self):
        with self.lock:
            return telnet_decode(bytes(self.data))

    def until(self, data_bytes, answers=0):
        """Waits until the data decoded so far is `data_bytes` long and `answers`
        SET-BAUDRATE answers came; the data and the answers."""
        deadline = time.monotonic() + PATIENCE
        while True:
            # The wire has at least as many bytes as the data: decode only then.
            while len(self.data) < data_bytes and time.monotonic() < deadline:
                time.sleep(0.01)
            data, subs = self.decoded()
            baud = baud_answers(subs)
            if len(data) >= data_bytes and len(baud) >= answers:
                return data, baud
            if time.monotonic() > deadline:
                fail(f"{len(data)} of {data_bytes} bytes, {len(baud)} of {answers} answers")
            time.sleep(0.01)


def straight():
    """The port's bytes written to each client by the thread that reads the port, or by
    the client's writer once its socket is full (a small receive buffer, a burst):
    every byte, 0xFF doubled, in order; the answers to the client's queries whole and
    never inside data; nothing while a client asked to suspend, all of it after."""
    pty = Pty()
    bridge, port = start(pty, "--max-clients", "2")
    fast = raw_client(port)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    slow.settimeout(5)
    slow.connect(("127.0.0.1", port))
    fast.sendall(bytes([IAC, WILL, COM_PORT]))
    slow.sendall(bytes([IAC, WILL, COM_PORT]))
    bridge.wait_for("watches")
    fast_reader = Reading(fast)
    sent, queries = bytearray(), 0
    # A device's pace: a piece at a time, each at the fast client before the next.
    for i in range(300):
        piece = bytes([i & 0xFF, IAC, 13, 0, IAC, IAC])
        pty.write(piece)
        sent += piece
        fast_reader.until(len(sent))
        if i % 50 == 0:
            slow.sendall(sub(1, 0, 0, 0, 0))
            queries += 1
    # A burst larger than the server's socket buffer can grow to (4 MiB), to a client
    # reading slowly: its socket fills, writes are cut (sometimes inside a doubled
    # 0xFF) and its writer takes over, and its queries are answered meanwhile.
    slow_reader = Reading(slow, slow=True)
    burst = (bytes(range(256)) * 3 + b"\xff" * 5 + b"\r\0\xff") * 6500
    for i in range(0, len(burst), 65536):
        pty.write(burst[i:i + 65536])
        slow.sendall(sub(1, 0, 0, 0, 0))
        queries += 1
    sent += burst
    for name, reader, answers in [("fast", fast_reader, 0), ("slow", slow_reader, queries)]:
        data, baud = reader.until(len(sent), answers)
        if data != sent:
            at = next((i for i, (a, b) in enumerate(zip(data, sent)) if a != b), len(sent))
            fail(f"{name} client: {len(data)} bytes of {len(sent)}, first difference at {at}")
        if len(baud) != answers:
            fail(f"{name} client: answers {baud[:3]}... ({len(baud)} of {answers})")
    # Suspended, the slow client gets nothing more; resumed, all of it.
    slow.sendall(sub(8))
    slow.sendall(sub(1, 0, 0, 0, 0))
    slow_reader.slow = False
    slow_reader.until(len(sent), queries + 1)
    held = b"held\xff"
    pty.write(held)
    fast_reader.until(len(sent) + len(held))
    window = time.monotonic() + 0.3
    while time.monotonic() < window:
        if len(slow_reader.decoded()[0]) > len(sent):
            fail("data reached a client that asked to suspend")
        time.sleep(0.01)
    slow.sendall(sub(9))
    data, _ = slow_reader.until(len(sent) + len(held))
    if data != sent + held:
        fail(f"after resuming: {data[len(sent):]!r}")
    bridge.stop()
    if "panicked" in bridge.text():
        fail(bridge.text())


SCENARIOS = {f.__name__: f for f in [pyserial, two_clients, hostile, esptool, client, client_refused,
                                     gensiot, pty_settings, handover, straight]}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print("ok")
