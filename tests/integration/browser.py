#!/usr/bin/env python3
"""The console page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium pointed at /usr/bin/chromedriver, so it never fetches anything).

Usage: browser.py console BRIDGE_BINARY [SCREENSHOT.png]

Opens the page ws-listen:// serves, sees a line written to the pty appear, types a line
and sees it reach the pty byte for byte, reloads and sees it reconnect, pushes 5,000
lines and sees the page keep its cap and stay responsive, and sees a page from another
origin refused. Exits 0, or 1 with one line saying what went wrong.
"""

import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws_peer  # noqa: E402  (the pty and bridge helpers)
from ws_peer import PATIENCE, Bridge, Pty, fail  # noqa: E402

MAX_LINES = 2000


def browser(profile, trust=None):
    """Chromium; `trust` is the base64 SHA-256 of a certificate's public key that it
    takes (the test CA's server certificate), and no other."""
    options = webdriver.ChromeOptions()
    if trust:
        options.add_argument(f"--ignore-certificate-errors-spki-list={trust}")
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1000,700", f"--user-data-dir={profile}",
                 # A name for the bridge's page, on loopback only.
                 "--host-resolver-rules=MAP board.test 127.0.0.1"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def until(what, check, patience=PATIENCE):
    deadline = time.monotonic() + patience
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def other_origin_page(port, scheme="ws"):
    """A page on another origin that tries to open a WebSocket to the bridge."""
    html = f"""<!doctype html><title>waiting</title><script>
      const ws = new WebSocket("{scheme}://127.0.0.1:{port}/");
      ws.onopen = () => {{ document.title = "opened"; }};
      ws.onclose = () => {{ if (document.title !== "opened") document.title = "refused"; }};
    </script>""".encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def console():
    shot = sys.argv[3] if len(sys.argv) > 3 else None
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            until("connected", lambda: text(driver, "status") == "connected")
            bridge.wait_for("connected (1 of")
            pty.write(b"hello from the board\r\nbytes \xff\x00 end\n")
            until("the lines", lambda: "\\xff\\x00 end" in text(driver, "log"))
            log = text(driver, "log")
            if "hello from the board\\r" not in log:
                fail(f"the line with its \\r is not shown escaped: {log!r}")
            box = driver.find_element(By.ID, "input")
            box.send_keys("led on \u00e9", Keys.ENTER)
            want = "led on \u00e9\n".encode()
            if pty.read_exactly(len(want)) != want:
                fail("the typed line changed on its way to the device")
            if shot:
                pty.write(b"temperature=21.5\r\nhumidity=40\r\nstatus: ok\r\n")
                until("more lines", lambda: "status: ok" in text(driver, "log"))
                driver.save_screenshot(shot)
            driver.refresh()
            until("reconnected", lambda: text(driver, "status") == "connected")
            pty.write(b"after reload\n")
            until("a line after the reload", lambda: "after reload" in text(driver, "log"))
            pty.write(b"".join(b"flood %05d\n" % i for i in range(5000)))
            until("the last line", lambda: "flood 04999" in text(driver, "log"))
            rows = driver.execute_script("return document.getElementById('log').childElementCount")
            if rows > MAX_LINES:
                fail(f"{rows} rows on the page, more than its cap of {MAX_LINES}")
            started = time.monotonic()
            driver.execute_script("return 1")
            if time.monotonic() - started > 2:
                fail("the page is not responsive after 5,000 lines")
            other = other_origin_page(port)
            driver.get(f"http://127.0.0.1:{other.server_port}/")
            until("the refusal", lambda: driver.title == "refused" or driver.title == "opened")
            if driver.title != "refused":
                fail("a page from another origin opened a WebSocket to the device")
            bridge.wait_for(f"origin http://127.0.0.1:{other.server_port} is not allowed")
            other.shutdown()
            # Opened by a name, with no token: the page says why it will not connect.
            driver.get(f"http://board.test:{port}/")
            until("the notice", lambda: "DNS rebinding" in text(driver, "notice"))
            if text(driver, "status") != "not connected":
                fail(f"status by a name: {text(driver, 'status')!r}")
        finally:
            driver.quit()
    bridge.stop()


def https():
    """The console page over https from wss-listen://, with the test CA's certificate
    trusted by its key alone: the page loads, lines cross both ways, and a page from
    another origin is still refused."""
    from tls_peer import Pki
    pki = Pki()
    cert, key = pki.pair("server")
    spki = subprocess.run(
        "openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der "
        "| openssl dgst -sha256 -binary | base64", shell=True, cwd=pki.dir,
        capture_output=True, check=True).stdout.decode().strip()
    pty = Pty()
    bridge = Bridge(pty.path, f"wss-listen://127.0.0.1:0,cert={cert},key={key}")
    port = bridge.port()
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile, trust=spki)
        try:
            driver.get(f"https://127.0.0.1:{port}/")
            until("connected over wss", lambda: text(driver, "status") == "connected")
            if not driver.current_url.startswith("https://"):
                fail(f"not over https: {driver.current_url}")
            pty.write(b"secure line \xff\n")
            until("the line", lambda: "secure line \\xff" in text(driver, "log"))
            box = driver.find_element(By.ID, "input")
            box.send_keys("typed over tls", Keys.ENTER)
            if pty.read_exactly(15) != b"typed over tls\n":
                fail("the typed line changed on its way to the device")
            other = other_origin_page(port, "wss")
            driver.get(f"http://127.0.0.1:{other.server_port}/")
            until("the refusal", lambda: driver.title in ("refused", "opened"))
            if driver.title != "refused":
                fail("a page from another origin opened a WebSocket to the device")
            bridge.wait_for(f"origin http://127.0.0.1:{other.server_port} is not allowed")
            other.shutdown()
        finally:
            driver.quit()
    bridge.stop()
    pki.cleanup()


if __name__ == "__main__":
    ws_peer.BIN = sys.argv[2]
    {"console": console, "https": https}[sys.argv[1]]()
    print("ok")
