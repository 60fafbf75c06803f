#!/usr/bin/env python3
"""Real TLS peers for the tls://, tls-listen://, mqtts://, wss:// and wss-listen:// tests:
Python's ssl module, socat's OPENSSL addresses, mosquitto with TLS listeners and
Python's websockets over ssl, with certificates made here by openssl.

Usage: tls_peer.py SCENARIO BRIDGE_BINARY

Each scenario makes its own certificates and pty pairs, starts the bridge binary, plays
the device on the pty master and the network side with a real peer, checks every byte,
and exits 0, or 1 with one line saying what went wrong. Every wait has a deadline.
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_peer import PATIENCE, BIN, Bridge, Pty, fail, free_port  # noqa: E402

# Every byte value but the delimiter, in lines.
AWKWARD = [bytes(b for b in range(256) if b != 10), b"", b"\r\xff\x00\xfe", b"plain"]


def payload(tag):
    return b"".join(tag + line + b"\n" for line in AWKWARD)


class Pki:
    """A CA, a server certificate for localhost and 127.0.0.1, an expired one, a client
    certificate, and a second CA nobody trusts, in a folder of their own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sb-tls-")
        self.ca = self.authority("ca", "serial-bridge test CA")
        self.other = self.authority("other", "another CA")
        self.server = self.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth")
        self.client = self.leaf("client", "board", None, "clientAuth")
        self.expired = self.leaf("expired", "localhost", "DNS:localhost,IP:127.0.0.1",
                                 "serverAuth", dates=("20200101000000Z", "20200201000000Z"))

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        done = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True)
        if done.returncode != 0:
            fail(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')}")

    def key(self, name):
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", f"{name}.key")
        os.chmod(self.path(f"{name}.key"), 0o600)

    def authority(self, name, cn):
        self.key(name)
        self.openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
                     "-days", "30", "-subj", f"/CN={cn}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(f"{name}.pem")

    def leaf(self, name, cn, san, usage, dates=None):
        self.key(name)
        self.openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={cn}")
        ext = f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
        if san:
            ext += f"subjectAltName={san}\n"
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(ext)
        if dates is None:
            self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                         "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
                         "-out", f"{name}.pem", "-extfile", f"{name}.ext")
        else:
            # `openssl ca` is the one that takes given dates on OpenSSL 3.0.
            os.makedirs(self.path("db"), exist_ok=True)
            open(self.path("db/index.txt"), "w").close()
            with open(self.path("ca.cnf"), "w") as f:
                f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=db/index.txt\nnew_certs_dir=db\n"
                        "serial=db/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n")
            with open(self.path("db/serial"), "w") as f:
                f.write("1000\n")
            self.openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem",
                         "-keyfile", "ca.key", "-in", f"{name}.csr", "-out", f"{name}.pem",
                         "-startdate", dates[0], "-enddate", dates[1], "-extfile", f"{name}.ext")
        return self.path(f"{name}.pem")

    def pair(self, name):
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def server_context(self, name="server", require_client=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.pair(name))
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca)
        return ctx

    def client_context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(*self.pair(cert))
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_listening(who, port):
    """Waits until `who` takes connections on `port` (each probe is one to it)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                fail(f"{who} never listened on {port}")
            time.sleep(0.05)


def read_until(sock, n):
    out = bytearray()
    deadline = time.monotonic() + PATIENCE
    sock.settimeout(0.5)
    while len(out) < n:
        if time.monotonic() > deadline:
            fail(f"only {len(out)} of {n} bytes: {out[:80]!r}")
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            continue
        except ssl.SSLWantReadError:
            continue
        if not chunk:
            fail(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


class TlsServer:
    """A one-connection TLS server on a thread: `conn` once a client has connected (or
    `error` if its handshake failed)."""

    def __init__(self, ctx):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conn = None
        self.error = None
        self.ready = threading.Event()

        def run():
            raw, _ = self.sock.accept()
            try:
                self.conn = ctx.wrap_socket(raw, server_side=True)
                # TLS 1.3 sends tickets and verdicts after the handshake: drive them now.
                self.conn.settimeout(0.2)
            except (ssl.SSLError, OSError) as e:
                self.error = e
            self.ready.set()
        threading.Thread(target=run, daemon=True).start()

    def wait(self):
        if not self.ready.wait(PATIENCE):
            fail("no TLS client came")
        if self.conn is None:
            fail(f"the handshake failed: {self.error}")
        return self.conn


def expect_exit(bridge, code, *needles):
    got = bridge.exit_code()
    text = bridge.text()
    if got != code:
        fail(f"exit {got}, not {code}: {text}")
    for needle in needles:
        if needle not in text:
            fail(f"no {needle!r} in: {text}")
    lines = [line for line in text.splitlines() if line.startswith("serial-bridge:")]
    if code != 0 and len(lines) != 1:
        fail(f"not one error line: {text}")


def stream():
    """tls:// to a Python TLS server, every byte both ways; the server's close_notify
    ends the bridge with exit 1."""
    pki = Pki()
    pty = Pty()
    server = TlsServer(pki.server_context())
    bridge = Bridge(pty.path, f"tls://localhost:{server.port},ca={pki.ca}")
    conn = server.wait()
    bridge.wait_for("bridging")
    bridge.wait_for("over TLS")
    data = payload(b"D") * 50
    pty.write(data)
    got = read_until(conn, len(data))
    if got != data:
        fail("pty -> tls: bytes differ")
    back = payload(b"S") * 50
    conn.sendall(back)
    got = pty.read_exactly(len(back))
    if got != back:
        fail("tls -> pty: bytes differ")
    conn.unwrap().close()
    expect_exit(bridge, 1, "tls://localhost")
    pki.cleanup()


def socat_server():
    """tls:// to socat's OPENSSL-LISTEN: every byte reaches socat as sent."""
    pki = Pki()
    pty = Pty()
    port = free_port()
    cert, key = pki.pair("server")
    # fork: the probe below that waits for it to listen is a connection of its own.
    peer = subprocess.Popen(
        ["socat", "-u", f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},"
         f"key={key},verify=0", "STDOUT"],
        stdout=subprocess.PIPE)
    deadline = time.monotonic() + PATIENCE
    wait_listening("socat", port)
    bridge = Bridge(pty.path, f"tls://localhost:{port},ca={pki.ca}")
    bridge.wait_for("bridging")
    data = payload(b"X") * 20
    pty.write(data)
    got = b""
    while len(got) < len(data):
        if time.monotonic() > deadline:
            fail(f"socat got {len(got)} of {len(data)} bytes")
        got += peer.stdout.read1(65536)
    if got != data:
        fail("pty -> socat: bytes differ")
    bridge.stop()
    peer.kill()
    pki.cleanup()


def listen():
    """tls-listen:// with two Python TLS clients and socat's OPENSSL client: each gets
    the device's lines, and each one's lines reach the device whole."""
    pki = Pki()
    pty = Pty()
    cert, key = pki.pair("server")
    bridge = Bridge("--max-clients", "3", pty.path,
                    f"tls-listen://127.0.0.1:0,cert={cert},key={key}")
    port = bridge.port()
    ctx = pki.client_context()
    clients = []
    for i in range(2):
        raw = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        clients.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        bridge.wait_for(f"({i + 1} of 3)")
    data = payload(b"D") * 20
    pty.write(data)
    for c in clients:
        if read_until(c, len(data)) != data:
            fail("device -> client: bytes differ")
    for i, c in enumerate(clients):
        lines = payload(bytes([ord("a") + i])) * 10
        c.sendall(lines)
        if pty.read_exactly(len(lines)) != lines:
            fail(f"client {i} -> device: bytes differ")
    # socat as a client, checking the certificate against the CA.
    peer = subprocess.Popen(
        ["socat", "-", f"OPENSSL:127.0.0.1:{port},cafile={pki.ca},commonname=localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    bridge.wait_for("(3 of 3)")
    peer.stdin.write(b"from socat\xff\n")
    peer.stdin.flush()
    if pty.read_exactly(12) != b"from socat\xff\n":
        fail("socat -> device: bytes differ")
    pty.write(b"to all\n")
    out = b""
    deadline = time.monotonic() + PATIENCE
    while not out.endswith(b"to all\n"):
        if time.monotonic() > deadline:
            fail(f"socat got {out!r}")
        out += peer.stdout.read1(4096)
    peer.kill()
    for c in clients:
        c.close()
    bridge.stop()
    pki.cleanup()


def refusals():
    """Each way a TLS start can fail is one line naming the cause and the setting that
    fixes it, and exit 3 (or 2 for a bad argument)."""
    pki = Pki()

    def client_to(ctx, *settings, host="localhost"):
        server = TlsServer(ctx)
        return Bridge("-", f"tls://{host}:{server.port}" + "".join("," + s for s in settings))

    # The system's roots do not hold the test CA; nor does another CA.
    expect_exit(client_to(pki.server_context()), 3, "not signed by a CA trusted here", "ca=FILE")
    expect_exit(client_to(pki.server_context(), f"ca={pki.other}"), 3, "ca=FILE")
    # A name the certificate is not for.
    expect_exit(client_to(pki.server_context(), f"ca={pki.ca}", "sni=wrong.example"), 3,
                "not for wrong.example", "sni=NAME")
    # An expired certificate.
    expect_exit(client_to(pki.server_context("expired"), f"ca={pki.ca}"), 3, "has expired")
    # A server that wants a client certificate.
    expect_exit(client_to(pki.server_context(require_client=True), f"ca={pki.ca}"), 3,
                "wants a client certificate", "cert=FILE,key=FILE")
    # A plain TCP server on the port: one that answers in plain text, one that hangs up.
    for answer in (b"HTTP/1.0 400 Bad Request\r\n\r\n", b""):
        plain = socket.socket()
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)

        def serve(answer=answer, plain=plain):
            conn, _ = plain.accept()
            conn.recv(4096)
            if answer:
                conn.sendall(answer)
            conn.close()
        threading.Thread(target=serve, daemon=True).start()
        bridge = Bridge("-", f"tls://localhost:{plain.getsockname()[1]},ca={pki.ca}")
        expect_exit(bridge, 3, "TLS")
        if "plain" not in bridge.text():
            fail(f"no hint of a plain port: {bridge.text()}")
    # A client certificate the server does not take (TLS 1.3 says so after the
    # handshake): still a start-up error.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki.pair("server"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.other)
    cert, key = pki.pair("client")
    expect_exit(client_to(ctx, f"ca={pki.ca}", f"cert={cert}", f"key={key}"), 3,
                "refused the certificate given with cert=")
    # A server that sends its handshake a byte at a time never stretches it past 10 s.
    trickle = socket.socket()
    trickle.bind(("127.0.0.1", 0))
    trickle.listen(1)

    def dribble():
        conn, _ = trickle.accept()
        conn.recv(4096)
        try:
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while True:
                conn.sendall(b"\x00")
                time.sleep(0.03)
        except OSError:
            pass
    threading.Thread(target=dribble, daemon=True).start()
    started = time.monotonic()
    bridge = Bridge("-", f"tls://localhost:{trickle.getsockname()[1]},ca={pki.ca}")
    expect_exit(bridge, 3, "no TLS handshake")
    if time.monotonic() - started > 15:
        fail(f"a dribbling handshake took {time.monotonic() - started:.1f} s")
    # Files that are not files: refused, not read for ever.
    expect_exit(Bridge("-", "tls://h:1,ca=/dev/zero"), 2, "not a regular file")
    # A private key everyone may read: refused before anything opens, with the fix.
    cert, key = pki.pair("client")
    os.chmod(key, 0o644)
    expect_exit(Bridge("-", f"tls://localhost:1,ca={pki.ca},cert={cert},key={key}"), 2,
                "chmod 600")
    os.chmod(key, 0o600)
    # A listener without its certificate; a missing file.
    expect_exit(Bridge("-", "tls-listen://0"), 2, "cert=FILE,key=FILE")
    expect_exit(Bridge("-", f"tls://h:1,ca={pki.path('nothing.pem')}"), 2, "nothing.pem")
    # insecure: warned, and the connection is made.
    pty = Pty()
    server = TlsServer(pki.server_context())
    bridge = Bridge(pty.path, f"tls://localhost:{server.port},insecure")
    conn = server.wait()
    bridge.wait_for("insecure")
    pty.write(b"unchecked\n")
    if read_until(conn, 10) != b"unchecked\n":
        fail("insecure: the line did not cross")
    bridge.stop()
    pki.cleanup()


def mutual():
    """Mutual TLS both ways: tls:// with cert= to a server that requires it, and
    tls-listen:// with client-ca= refusing a client without a certificate."""
    pki = Pki()
    pty = Pty()
    cert, key = pki.pair("client")
    server = TlsServer(pki.server_context(require_client=True))
    bridge = Bridge(pty.path, f"tls://localhost:{server.port},ca={pki.ca},cert={cert},key={key}")
    conn = server.wait()
    pty.write(b"with my certificate\n")
    if read_until(conn, 20) != b"with my certificate\n":
        fail("mutual: the line did not cross")
    if conn.getpeercert()["subject"][0][0][1] != "board":
        fail("the server did not see the client's certificate")
    bridge.stop()

    scert, skey = pki.pair("server")
    bridge = Bridge(pty.path, f"tls-listen://127.0.0.1:0,cert={scert},key={skey},"
                    f"client-ca={pki.ca}")
    port = bridge.port()
    raw = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    try:
        anonymous = pki.client_context().wrap_socket(raw, server_hostname="localhost")
        # TLS 1.3: the refusal comes after the handshake, at the first read.
        anonymous.settimeout(PATIENCE)
        if anonymous.recv(1) != b"":
            fail("a client without a certificate was served")
    except (ssl.SSLError, ConnectionResetError):
        pass
    bridge.wait_for("refused 127.0.0.1")
    raw = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    known = pki.client_context("client").wrap_socket(raw, server_hostname="localhost")
    bridge.wait_for("connected (1 of 1)")
    known.sendall(b"known\n")
    if pty.read_exactly(6) != b"known\n":
        fail("the client with a certificate was not heard")
    bridge.stop()
    pki.cleanup()


class Mosquitto:
    """mosquitto with a TLS listener, one that requires client certificates, and a plain
    one for its own clients, on free loopback ports."""

    def __init__(self, pki):
        self.tls, self.mutual, self.plain = free_port(), free_port(), free_port()
        cert, key = pki.pair("server")
        self.conf = os.path.join(pki.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"user root\nper_listener_settings false\nallow_anonymous true\n"
                    f"log_dest stderr\nlog_type all\n"
                    f"listener {self.plain} 127.0.0.1\n"
                    f"listener {self.tls} 127.0.0.1\ncafile {pki.ca}\ncertfile {cert}\nkeyfile {key}\n"
                    f"listener {self.mutual} 127.0.0.1\ncafile {pki.ca}\ncertfile {cert}\n"
                    f"keyfile {key}\nrequire_certificate true\n")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for port in (self.plain, self.tls, self.mutual):
            wait_listening("mosquitto", port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=PATIENCE)

    def sub(self, topic):
        proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.plain),
                                 "-t", topic, "-F", "%x"], stdout=subprocess.PIPE)
        time.sleep(0.3)
        return proc

    def publish(self, topic, data):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.plain), "-t", topic,
                        "-s"], input=data, check=True, timeout=PATIENCE)


def read_hex_lines(proc, count):
    out = []
    deadline = time.monotonic() + PATIENCE
    while len(out) < count:
        if time.monotonic() > deadline:
            fail(f"only {len(out)} of {count} messages")
        line = proc.stdout.readline()
        if not line:
            fail("mosquitto_sub ended")
        out.append(bytes.fromhex(line.decode().strip()))
    return out


def mqtts():
    """mqtts:// with a CA, mutual TLS, a missing client certificate, a plain port, and a
    broker restart under --reconnect."""
    pki = Pki()
    broker = Mosquitto(pki)
    pty = Pty()
    sub = broker.sub("lab/out")
    bridge = Bridge("--reconnect", pty.path,
                    f"mqtts://localhost:{broker.tls},pub=lab/out,sub=lab/in,ca={pki.ca}")
    bridge.wait_for("bridging")
    lines = [line for line in AWKWARD if line]
    pty.write(b"".join(line + b"\n" for line in lines))
    if read_hex_lines(sub, len(lines)) != lines:
        fail("device -> mqtts: messages differ")
    broker.publish("lab/in", b"\xff\x00back")
    if pty.read_exactly(7) != b"\xff\x00back\n":
        fail("mqtts -> device: bytes differ")
    # The broker goes away and comes back: reconnected over TLS, lines flow again.
    broker.stop()
    bridge.wait_for("reconnect")
    broker.start()
    deadline = time.monotonic() + PATIENCE
    while bridge.text().count("over TLS") < 2:
        if time.monotonic() > deadline:
            fail(f"never reconnected: {bridge.text()}")
        time.sleep(0.05)
    sub.kill()
    sub = broker.sub("lab/out")
    pty.write(b"after restart\n")
    if read_hex_lines(sub, 1) != [b"after restart"]:
        fail("no line after the restart")
    bridge.stop()
    sub.kill()
    # Mutual TLS: with a client certificate, and without one.
    cert, key = pki.pair("client")
    sub = broker.sub("lab/m")
    bridge = Bridge(pty.path, f"mqtts://localhost:{broker.mutual},pub=lab/m,ca={pki.ca},"
                    f"cert={cert},key={key}")
    bridge.wait_for("bridging")
    pty.write(b"mutual\n")
    if read_hex_lines(sub, 1) != [b"mutual"]:
        fail("mutual TLS: no message")
    bridge.stop()
    sub.kill()
    expect_exit(Bridge(pty.path, f"mqtts://localhost:{broker.mutual},pub=lab/m,ca={pki.ca}"),
                3, "wants a client certificate", "cert=FILE,key=FILE")
    expect_exit(Bridge(pty.path, f"mqtts://localhost:{broker.plain},pub=lab/m,ca={pki.ca}"),
                3, "TLS")
    # The other way round: plain MQTT to the TLS port gets a hint.
    expect_exit(Bridge("-", f"mqtt://127.0.0.1:{broker.tls},pub=lab/m"), 3, "then mqtts://")
    expect_exit(Bridge(pty.path, f"mqtts://127.0.0.1:{broker.tls},pub=lab/m,ca={pki.other}"),
                3, "ca=FILE")
    broker.stop()
    pki.cleanup()


def wss():
    """wss:// to Python's websockets server over ssl, and wss-listen:// with Python
    clients: every byte both ways, and the Origin check still on."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.sync.server import serve

    pki = Pki()
    pty = Pty()
    got = []
    done = threading.Event()

    def handler(ws):
        ws.send(b"from server\xff\x00")
        for message in ws:
            # A line that is valid UTF-8 goes as a text message.
            got.append(message if isinstance(message, bytes) else message.encode())
            if len(got) == 2:
                done.set()

    port = free_port()
    with serve(handler, "127.0.0.1", port, ssl=pki.server_context()) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        bridge = Bridge(pty.path, f"wss://localhost:{port}/x,ca={pki.ca}")
        if pty.read_exactly(14) != b"from server\xff\x00\n":
            fail("wss -> device: bytes differ")
        pty.write(b"one\xff\n\x00two\n")
        if not done.wait(PATIENCE):
            fail(f"the server got {got!r}")
        if got != [b"one\xff", b"\x00two"]:
            fail(f"the server got {got!r}")
        bridge.stop()
        server.shutdown()

    cert, key = pki.pair("server")
    bridge = Bridge(pty.path, f"wss-listen://127.0.0.1:0,cert={cert},key={key}")
    port = bridge.port()
    bridge.wait_for(f"open https://127.0.0.1:{port}/")
    with connect(f"wss://localhost:{port}/", ssl=pki.client_context()) as ws:
        bridge.wait_for("connected (1 of")
        pty.write(b"line\xfe\n")
        if ws.recv(timeout=PATIENCE) != b"line\xfe":
            fail("device -> wss-listen client differs")
        ws.send(b"typed\x00")
        if pty.read_exactly(7) != b"typed\x00\n":
            fail("wss-listen client -> device differs")
    try:
        with connect(f"wss://localhost:{port}/", ssl=pki.client_context(),
                     origin="https://evil.example"):
            fail("a page from another origin was taken")
    except InvalidStatus as e:
        if e.response.status_code != 403:
            fail(f"another origin got {e.response.status_code}, not 403")
    # Plain ws:// to the TLS port gets a hint.
    expect_exit(Bridge("-", f"ws://127.0.0.1:{port}/"), 3, "then wss://")
    bridge.stop()
    pki.cleanup()


def unread():
    """No head-of-line blocking: a TLS peer that reads nothing, so the bridge's writer
    waits on a full socket, is still heard at once; then it reads, and every byte it was
    sent arrives in order."""
    pki = Pki()
    pty = Pty()
    ctx = pki.server_context()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    bridge = Bridge(pty.path, f"tls://localhost:{port},ca={pki.ca}")
    raw, _ = listener.accept()
    conn = ctx.wrap_socket(raw, server_side=True)
    bridge.wait_for("bridging")
    flood = b"".join(b"%07d " % i + b"\xff" * 90 + b"\n" for i in range(200000))
    writer = threading.Thread(target=pty.write, args=(flood,), daemon=True)
    writer.start()
    # The bridge has stopped taking the device's lines: its writer is stuck.
    time.sleep(0.5)
    if not writer.is_alive():
        fail("the flood fitted in the buffers; nothing was stuck")
    conn.sendall(b"heard while stuck\n")
    if pty.read_exactly(18) != b"heard while stuck\n":
        fail("the reader was held up")
    got = read_until(conn, len(flood))
    if got != flood:
        fail("the flood arrived changed")
    writer.join(PATIENCE)
    bridge.stop()
    pki.cleanup()


def rfc2217():
    """A serial port served by rfc2217-listen:// over TLS to an rfc2217:// client with
    ca=: the client's baud rate reaches the port, every byte crosses both ways; a client
    without TLS gets nothing from the TLS port."""
    from rfc2217_peer import speed
    pki = Pki()
    device, far = Pty(), Pty()
    cert, key = pki.pair("server")
    server = Bridge(f"{device.path},baud=9600", f"rfc2217-listen://127.0.0.1:0,cert={cert},key={key}")
    port = server.port()
    client = Bridge(far.path, f"rfc2217://localhost:{port},baud=57600,ca={pki.ca}")
    client.wait_for("bridging")
    server.wait_for("set the port to 57600")
    if speed(device.slave) != 57600:
        fail(f"the served port runs at {speed(device.slave)}")
    # Across from a serial port the client frames lines, as a local port would.
    data = bytes(range(256)) * 32 + b"\xff\xff\x00\n"
    far.write(data)
    if device.read_exactly(len(data)) != data:
        fail("client -> served port: bytes differ")
    device.write(data)
    if far.read_exactly(len(data)) != data:
        fail("served port -> client: bytes differ")
    client.stop()
    plain = Bridge(far.path, f"rfc2217://127.0.0.1:{port}")
    expect_exit(plain, 3, "rfc2217://127.0.0.1")
    server.stop()
    pki.cleanup()


SCENARIOS = {f.__name__: f for f in (stream, socat_server, listen, refusals, mutual, mqtts, wss,
                                     unread, rfc2217)}

if __name__ == "__main__":
    if BIN is None:
        fail("usage: tls_peer.py SCENARIO BRIDGE_BINARY")
    SCENARIOS[sys.argv[1]]()
