#!/usr/bin/env python3
"""The console page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium pointed at /usr/bin/chromedriver, so it never fetches anything).

Usage: browser.py SCENARIO BRIDGE_BINARY [SCREENSHOT.png]

  console   the page ws-listen:// serves: a line written to the pty appears, a typed line
            reaches the pty byte for byte, a reload reconnects, 5,000 lines keep the
            page within its cap and responsive, a page from another origin is refused
  https     the same over wss-listen://
  plot      numeric lines become series (key=value, bare numbers, label:value), text
            lines make none, Pause holds the chart
  endings   each line ending byte for byte; the lines sent come back with ArrowUp
  history   lines from before the tab opened, marked as earlier; a reconnect shows no
            line twice; the title and header name the device
  reading   autoscroll, Save, the filter, hex, a phone-wide layout
  screens   writes docs/console.png and docs/plotter.png
  load      a measurement (scripts/bench-page): one JSON line on stdout

Exits 0, or 1 with one line saying what went wrong.
"""

import contextlib
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


def browser(profile, trust=None, downloads=None, flags=()):
    """Chromium; `trust` is the base64 SHA-256 of a certificate's public key that it
    takes (the test CA's server certificate), and no other. Files it downloads go to
    `downloads`."""
    options = webdriver.ChromeOptions()
    if trust:
        options.add_argument(f"--ignore-certificate-errors-spki-list={trust}")
    if downloads:
        options.add_experimental_option("prefs", {
            "download.default_directory": downloads, "download.prompt_for_download": False,
            "download.directory_upgrade": True, "safebrowsing.enabled": False})
    for flag in flags:
        options.add_argument(flag)
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

    # A thread per connection: Chromium may open a connection it sends nothing on (a
    # preconnect), and a one-connection-at-a-time server waits on it (about a minute)
    # before `shutdown` can return.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.daemon_threads = True
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



# ---------------------------------------------------------------- helpers for the page


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def viewport(driver, width, height, mobile=False):
    """The page's viewport, exactly (the window's size counts the browser's frame)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def opened(driver, port, query=""):
    driver.get(f"http://127.0.0.1:{port}/{query}")
    until("connected", lambda: text(driver, "status") == "connected")


def click(driver, element_id):
    driver.find_element(By.ID, element_id).click()


def legend(driver):
    return js(driver, "const l = document.querySelector('#chart .u-legend'); return l ? l.textContent : ''")


def chart_end(driver):
    """The chart's data: how many points, and the last x (the sample number)."""
    return js(driver, """const u = window.__console.chart;
        if (!u || !u.data[0].length) return [0, -1];
        return [u.data[0].length, u.data[0][u.data[0].length - 1]];""")


def select(driver, element_id, value):
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def rows(driver):
    """The rows of the log: [class, text of the line] each."""
    return js(driver, """return [...document.getElementById('log').children].map(r =>
        [r.className, r.classList.contains('sep') ? r.textContent : r.querySelector('.text').textContent]);""")


@contextlib.contextmanager
def session(before=None, **options):
    """A pty, a bridge serving it on ws-listen://, and Chromium with `options`: yields
    (pty, bridge, port, driver). `before(pty, bridge)` runs before the browser starts.
    The browser quits, and the bridge is stopped (exit 0 checked)."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    if before:
        before(pty, bridge)
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile, **options)
        try:
            yield pty, bridge, port, driver
        finally:
            driver.quit()
    bridge.stop()

# ---------------------------------------------------------------- scenarios


def plot():
    """Numeric lines in each format become series named in the chart's legend; text
    lines make none; Pause holds the chart while lines go on arriving."""
    with session() as (pty, bridge, port, driver):
        opened(driver, port)
        bridge.wait_for("connected (1 of")
        click(driver, "plot-toggle")
        until("the chart library", lambda: js(driver, "return !!window.uPlot"))
        # Text alone: no series, however it looks.
        pty.write(b"booting v1.4\r\nstatus: ok\r\n12:30:05 tick\r\nerror 42 at 0x1f\r\nT=\r\n")
        until("the text lines", lambda: "T=" in text(driver, "log"))
        series = js(driver, "return window.__console.series")
        if series or legend(driver):
            fail(f"text lines made series: {series} {legend(driver)!r}")
        # key=value, space separated.
        pty.write(b"".join(b"temperature=%.1f humidity=%d\r\n" % (20 + i / 10, 40 + i % 5) for i in range(20)))
        until("the key=value series", lambda: "temperature" in legend(driver) and "humidity" in legend(driver))
        # Bare numbers, comma separated: named by their place.
        pty.write(b"".join(b"%.1f,%d,%d\n" % (21.5 + i, 40, 1013 - i) for i in range(20)))
        until("the unnamed series", lambda: all(f"value {k}" in legend(driver) for k in (1, 2, 3)))
        # The Arduino plotter's label:value, tab separated.
        pty.write(b"".join(b"temp:%d\thum:%d\tlight:%d\n" % (i, 2 * i, 3 * i) for i in range(20)))
        until("the label:value series", lambda: all(f in legend(driver) for f in ("temp", "hum", "light")))
        want = ["temperature", "humidity", "value 1", "value 2", "value 3", "temp", "hum", "light"]
        if js(driver, "return window.__console.series") != want:
            fail(f"series: {js(driver, 'return window.__console.series')}, want {want}")
        # Lines that begin like numbers and end in text make no series.
        pty.write(b"Temp: 21.5 C\nid0=0 connected\n")
        until("the text after numbers", lambda: "id0=0 connected" in text(driver, "log"))
        if js(driver, "return window.__console.series") != want:
            fail(f"text lines made series: {js(driver, 'return window.__console.series')}")
        # A value beyond the chart's range is a gap: the scale stays finite.
        before = js(driver, "return window.__console.samples")
        pty.write(b"temp:1e309\thum:1\tlight:1\ntemp:1\thum:1e308\tlight:-1e308\n")
        until("the huge values", lambda: js(driver, "return window.__console.samples") == before + 2)
        until("the chart caught up", lambda: chart_end(driver)[1] == before + 1)
        scale = js(driver, "const s = window.__console.chart.scales.y; return [s.min, s.max]")
        if not all(isinstance(v, (int, float)) and abs(v) < 1e301 for v in scale):
            fail(f"a huge value broke the y scale: {scale}")
        more_text = b"just text\n"
        pty.write(more_text)
        until("a text line after numbers", lambda: "just text" in text(driver, "log"))
        if js(driver, "return window.__console.series") != want:
            fail("a text line made a series")
        samples = js(driver, "return window.__console.samples")
        until("the chart caught up", lambda: chart_end(driver)[1] == samples - 1)
        # Pause: the chart holds while lines go on arriving.
        click(driver, "plot-pause")
        held = chart_end(driver)
        pty.write(b"".join(b"temp:%d\thum:%d\tlight:%d\n" % (i, i, i) for i in range(100)))
        until("the lines while paused", lambda: js(driver, "return window.__console.samples") >= samples + 100)
        # A few frames later, still held.
        js(driver, "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        if chart_end(driver) != held:
            fail(f"the paused chart moved: {held} -> {chart_end(driver)}")
        click(driver, "plot-pause")
        until("the chart after resuming", lambda: chart_end(driver)[1] == samples + 99)
        if driver.find_element(By.ID, "plot-pause").text != "Pause":
            fail("the pause button does not say Pause again")


def endings():
    """Each line ending reaches the device byte for byte; ArrowUp recalls the lines
    sent; the choice is remembered across a reload."""
    with session() as (pty, bridge, port, driver):
        opened(driver, port)
        if js(driver, "return document.getElementById('ending').value") != "lf":
            fail("the default line ending is not the bridge's newline")
        box = driver.find_element(By.ID, "input")
        for value, ending in [("none", b""), ("lf", b"\n"), ("cr", b"\r"), ("crlf", b"\r\n")]:
            select(driver, "ending", value)
            line = f"cmd {value} \u00e9"
            box.send_keys(line, Keys.ENTER)
            want = line.encode() + ending
            got = pty.read_exactly(len(want))
            if got != want:
                fail(f"ending {value}: the device got {got!r}, want {want!r}")
        import select as poll
        if poll.select([pty.master], [], [], 0.5)[0]:
            fail(f"more bytes reached the device: {os.read(pty.master, 100)!r}")
        # The lines sent, newest first, and back to what was being typed.
        box.send_keys("draft")
        for key, want in [(Keys.ARROW_UP, "cmd crlf \u00e9"), (Keys.ARROW_UP, "cmd cr \u00e9"),
                          (Keys.ARROW_DOWN, "cmd crlf \u00e9"), (Keys.ARROW_DOWN, "draft")]:
            box.send_keys(key)
            if box.get_attribute("value") != want:
                fail(f"history: {box.get_attribute('value')!r}, want {want!r}")
        box.clear()
        box.send_keys(Keys.ARROW_UP, Keys.ENTER)
        want = "cmd crlf \u00e9\r\n".encode()
        if pty.read_exactly(len(want)) != want:
            fail("the recalled line did not go out as sent")
        # The sent line shows with its ending.
        until("the sent line", lambda: "cmd crlf \u00e9\\r\\n" in text(driver, "log"))
        driver.refresh()
        until("reconnected", lambda: text(driver, "status") == "connected")
        if js(driver, "return document.getElementById('ending').value") != "crlf":
            fail("the chosen line ending was not remembered")
        box = driver.find_element(By.ID, "input")
        box.send_keys(Keys.ARROW_UP)
        if box.get_attribute("value") != "cmd crlf \u00e9":
            fail("the sent lines were not remembered across a reload")


def history():
    """Lines the device wrote before any tab was open are shown, in order, marked as
    earlier; the title and the header name the device; after the bridge restarts, the
    page shows its new history once, with no line twice."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    early = [b"early %d" % i for i in range(1, 6)] + [b"early \xff bytes"]
    pty.write(b"".join(line + b"\n" for line in early))
    bridge.wait_for("no client connected")
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            opened(driver, port)
            until("the earlier lines", lambda: "early \\xff bytes" in text(driver, "log"))
            if pty.path not in driver.title:
                fail(f"the title does not name the device: {driver.title!r}")
            if driver.find_element(By.ID, "device").text != pty.path:
                fail(f"the header does not name the device: {driver.find_element(By.ID, 'name').text!r}")
            pty.write(b"live 1\n")
            until("a live line", lambda: "live 1" in text(driver, "log"))
            got = rows(driver)
            want = [("line sep", "\u2014 6 earlier lines, from before this tab opened \u2014")]
            want += [("line in earlier", l.decode(errors="replace").replace("\ufffd", "\\xff")) for l in early]
            want += [("line in", "live 1")]
            if [tuple(r) for r in got] != want:
                fail(f"rows: {got}, want {want}")
            # The bridge restarts on the same port; the device writes meanwhile.
            bridge.stop()
            until("the page sees it gone", lambda: text(driver, "status").startswith("disconnected"))
            bridge = Bridge(pty.path, f"ws-listen://127.0.0.1:{port}")
            bridge.port()
            pty.write(b"while away\n")
            bridge.wait_for("no client connected")
            until("reconnected", lambda: text(driver, "status") == "connected")
            until("the new history", lambda: "while away" in text(driver, "log"))
            pty.write(b"live 2\n")
            until("a live line after the reconnect", lambda: "live 2" in text(driver, "log"))
            got = [tuple(r) for r in rows(driver)]
            want = [("line sep", "\u2014 1 earlier line, from before this tab reconnected \u2014"),
                    ("line in earlier", "while away"), ("line in", "live 2")]
            if got != want:
                fail(f"rows after the reconnect: {got}, want {want}")
        finally:
            driver.quit()
    bridge.stop()


def reading():
    """Autoscroll stops while scrolled up and resumes at the bottom; Save downloads
    the lines shown; the filter shows only matching lines; hex shows a line's exact
    bytes; at 390 px wide the header is one row and nothing overflows."""
    pty = Pty()
    bridge = Bridge(pty.path, "ws-listen://127.0.0.1:0")
    port = bridge.port()
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryDirectory() as downloads:
        driver = browser(profile, downloads=downloads)
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
            opened(driver, port)
            bridge.wait_for("connected (1 of")
            pty.write(b"".join(b"line %03d\n" % i for i in range(300)))
            until("300 lines", lambda: "line 299" in text(driver, "log"))
            at_bottom = "const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight <= 4"
            until("at the bottom", lambda: js(driver, at_bottom))
            # Scrolled up: the view stays put while lines arrive.
            js(driver, "document.getElementById('log').scrollTop = 200")
            until("autoscroll off", lambda: js(driver, "return !window.__console.following"))
            pty.write(b"".join(b"line %03d\n" % i for i in range(300, 350)))
            until("the new lines counted", lambda: "(50 new)" in driver.find_element(By.ID, "jump").text)
            if js(driver, "return document.getElementById('log').scrollTop") != 200:
                fail("the log scrolled while scrolled up")
            if "line 349" in text(driver, "log"):
                fail("lines were added under a log scrolled up")
            # Back at the bottom: it follows again.
            js(driver, "const l = document.getElementById('log'); l.scrollTop = l.scrollHeight")
            until("the held lines", lambda: "line 349" in text(driver, "log"))
            pty.write(b"line 350\n")
            until("a line after", lambda: "line 350" in text(driver, "log"))
            until("at the bottom again", lambda: js(driver, at_bottom))
            # And the button takes it there too.
            js(driver, "document.getElementById('log').scrollTop = 0")
            until("autoscroll off", lambda: js(driver, "return !window.__console.following"))
            pty.write(b"line 351\n")
            until("the jump button", lambda: "(1 new)" in driver.find_element(By.ID, "jump").text)
            click(driver, "jump")
            until("the jump", lambda: "line 351" in text(driver, "log") and js(driver, at_bottom))
            # Hex: the exact bytes of a line.
            raw = b"hex \xff\x00z\xc3\xa9\r"
            pty.write(raw + b"\n")
            until("the bytes line", lambda: "hex \\xff\\x00z\u00e9\\r" in text(driver, "log"))
            row = driver.find_elements(By.CSS_SELECTOR, "#log .line")[-1]
            row.click()
            dump = until("the hex view", lambda: js(driver, "const h = document.querySelector('#log .hex'); return h && h.textContent"))
            got = bytes.fromhex("".join(l[6:55] for l in dump.splitlines()[:-1]))
            if got != raw or not dump.endswith(f"{len(raw)} bytes"):
                fail(f"hex view {dump!r}: {got!r}, want {raw!r}")
            # Enter on a focused line closes it again.
            js(driver, "const r = document.querySelector('#log .line.open'); r.tabIndex = -1; r.focus()")
            driver.switch_to.active_element.send_keys(Keys.ENTER)
            until("the hex view closed", lambda: js(driver, "return !document.querySelector('#log .hex')"))
            # The filter: only matching lines.
            driver.find_element(By.ID, "filter").send_keys("line 12")
            until("the filter", lambda: len(rows(driver)) == 10)
            shown = [r[1] for r in rows(driver)]
            if shown != [f"line {i}" for i in range(120, 130)]:
                fail(f"filtered: {shown}")
            # Save: a file of the lines shown, as shown.
            click(driver, "save")
            saved = until("the download", lambda: [f for f in os.listdir(downloads) if f.endswith(".txt")])
            path = os.path.join(downloads, saved[0])
            content = until("the file written", lambda: open(path, encoding="utf-8").read())
            lines = content.splitlines()
            if len(lines) != 10 or not all(l.endswith(f"\u2190 line {120 + i}") for i, l in enumerate(lines)):
                fail(f"the saved file: {content!r}")
            stamp = lines[0].split(" ")[0]
            if len(stamp) != 12 or stamp[2] != ":" or stamp[8] != ".":
                fail(f"no time on a saved line: {lines[0]!r}")
            if not saved[0].startswith(os.path.basename(pty.path)):
                fail(f"the file's name does not name the device: {saved[0]}")
            driver.find_element(By.ID, "filter").send_keys(Keys.CONTROL, "a", Keys.DELETE)
            until("the filter cleared", lambda: len(rows(driver)) > 300)
            # A phone: the header is one row, and nothing is wider than the screen.
            for plotted in (False, True):
                if plotted:
                    click(driver, "plot-toggle")
                viewport(driver, 390, 800, mobile=True)
                until("the narrow layout", lambda: js(driver, "return window.innerWidth") == 390)
                tops = js(driver, "return [...document.querySelector('header').children].map(e => e.offsetTop)")
                height = js(driver, "return document.querySelector('header').offsetHeight")
                button = js(driver, "return document.getElementById('plot-toggle').offsetHeight")
                if len(set(tops)) != 1 or height > button + 20:
                    fail(f"at 390 px the header is not one row: tops {tops}, {height} px high")
                wide = js(driver, "return [document.documentElement.scrollWidth, window.innerWidth]")
                if wide[0] > wide[1]:
                    fail(f"at 390 px the page is {wide[0]} px wide")
        finally:
            driver.quit()
    bridge.stop()


def screens():
    """docs/console.png and docs/plotter.png, for the README (1000x700 each)."""
    import math
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")

    def boot(pty, bridge):
        pty.write(b"ESP-ROM:esp32s3-20210327\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"
                  b"sensor-node v1.4.2 starting\r\n")
        bridge.wait_for("no client connected")

    with session(boot) as (pty, bridge, port, driver):
        viewport(driver, 1000, 700)
        opened(driver, port)
        bridge.wait_for("connected (1 of")
        for line in [b"WiFi: connecting to \"workshop\"...\r\n", b"WiFi: connected, IP 192.168.1.42\r\n",
                     b"BME280 found at 0x76\r\n",
                     b"temperature=21.8 humidity=44.1 pressure=101.32\r\n",
                     b"temperature=21.9 humidity=44.0 pressure=101.32\r\n"]:
            pty.write(line)
        until("the lines", lambda: "humidity=44.0" in text(driver, "log"))
        box = driver.find_element(By.ID, "input")
        box.send_keys("led on", Keys.ENTER)
        pty.read_exactly(7)
        pty.write(b"LED: on\r\nframe: \x02\x10\xff\x7f\x03\r\ntemperature=22.0 humidity=43.8 pressure=101.31\r\n")
        until("the answer", lambda: "pressure=101.31" in text(driver, "log"))
        # The binary frame's bytes, in hex.
        [r for r in driver.find_elements(By.CSS_SELECTOR, "#log .line") if "frame:" in r.text][0].click()
        until("the hex view", lambda: js(driver, "return !!document.querySelector('#log .hex')"))
        js(driver, "document.activeElement.blur()")
        driver.save_screenshot(os.path.join(docs, "console.png"))
        # The plotter: a few hundred points of three series, on a clear page.
        click(driver, "clear")
        click(driver, "plot-toggle")
        until("the chart library", lambda: js(driver, "return !!window.uPlot"))
        data = b""
        for i in range(420):
            # A room warming up and airing out: humidity falls as it warms, and the
            # dew point follows from both (Magnus formula).
            t = 21.5 + 3.2 * math.sin(i / 70) + 0.35 * math.sin(i / 9.3) + 0.1 * math.sin(i * 1.7)
            h = 46 - 9 * math.sin(i / 70 + 0.4) + 1.2 * math.sin(i / 6.1)
            g = math.log(h / 100) + 17.62 * t / (243.12 + t)
            d = 243.12 * g / (17.62 - g)
            data += b"temperature=%.2f humidity=%.1f dew_point=%.2f\r\n" % (t, h, d)
        pty.write(data)
        until("the points", lambda: js(driver, "return window.__console.samples") >= 420)
        until("the chart drawn", lambda: chart_end(driver)[0] >= 420)
        js(driver, "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        driver.save_screenshot(os.path.join(docs, "plotter.png"))


def load():
    """A measurement, not a test: the plotter on, the device writing 1,000 lines/s of
    8 numeric series for 30 s. Prints one JSON line: long tasks, frame times, JS heap,
    the log's rows at the end and the lines the page received (after 5 s of warm-up)."""
    import json
    import math
    seconds = float(os.environ.get("LOAD_SECONDS", "30"))
    rate = int(os.environ.get("LOAD_RATE", "1000"))
    with session(flags=["--enable-precise-memory-info"]) as (pty, bridge, port, driver):
        viewport(driver, 1000, 700)
        opened(driver, port)
        bridge.wait_for("connected (1 of")
        click(driver, "plot-toggle")
        until("the chart library", lambda: js(driver, "return !!window.uPlot"))
        js(driver, """
            const m = window.__load = { long: [], frames: [], heap: [], t0: performance.now() };
            new PerformanceObserver((list) => {
              for (const e of list.getEntries()) m.long.push([e.startTime - m.t0, e.duration]);
            }).observe({ type: "longtask" });
            let last = 0;
            const frame = (t) => { if (last) m.frames.push([t - m.t0, t - last]); last = t; requestAnimationFrame(frame); };
            requestAnimationFrame(frame);
            const sample = () => m.heap.push([performance.now() - m.t0, performance.memory.usedJSHeapSize,
                                              window.__console.total]);
            sample();
            setInterval(sample, 1000);""")
        names = [b"ch%d" % k for k in range(1, 9)]
        stop = threading.Event()
        sent = [0]

        def feed():
            start = time.monotonic()
            tick = 0.01
            per = rate * tick
            k = 0
            while not stop.is_set():
                due = start + k * tick
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                want = int((k + 1) * per) - int(k * per)
                chunk = b""
                for _ in range(want):
                    i = sent[0]
                    chunk += b" ".join(b"%s=%.3f" % (n, 10 * j + 5 * math.sin(i / (50 + 13 * j)))
                                       for j, n in enumerate(names)) + b"\n"
                    sent[0] += 1
                pty.write(chunk)
                k += 1

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        started = time.monotonic()
        until("the load's end", lambda: time.monotonic() - started >= seconds, patience=seconds + 30)
        stop.set()
        feeder.join(PATIENCE)
        m = js(driver, "return window.__load")
        end = js(driver, "return [window.__console.total, document.getElementById('log').childElementCount, "
                         "window.__console.chart ? window.__console.chart.data[0].length : 0]")
    # 5 s of warm-up (less in a short run, such as the smoke test's).
    warm = min(5000, seconds * 1000 / 2)
    longs = [d for t, d in m["long"] if t >= warm]
    frames = sorted(d for t, d in m["frames"] if t >= warm)

    def pct(p):
        return round(frames[min(len(frames) - 1, int(len(frames) * p))], 1) if frames else None

    def heap_at(ms):
        return round(min(m["heap"], key=lambda h: abs(h[0] - ms))[1] / 1e6, 1)

    lines_at_warm = min(m["heap"], key=lambda h: abs(h[0] - warm))[2]
    print(json.dumps({
        "seconds": seconds, "rate": rate, "series": 8, "lines_sent": sent[0],
        "lines_received": end[0], "lines_received_after_warmup": end[0] - lines_at_warm,
        "longest_task_ms": round(max(longs), 1) if longs else 0,
        "long_tasks_over_50ms": len([d for d in longs if d > 50]),
        "frame_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
                     "max": round(frames[-1], 1) if frames else None, "frames": len(frames)},
        "heap_mb": {"at_5s": heap_at(warm), "at_end": heap_at(seconds * 1000),
                    "max_after_warmup": round(max(h[1] for h in m["heap"] if h[0] >= warm) / 1e6, 1),
                    "every_10s": [heap_at(ms) for ms in range(10_000, int(seconds * 1000) + 1, 10_000)]},
        "dom_rows": end[1], "max_lines": MAX_LINES, "chart_points": end[2],
    }), flush=True)


if __name__ == "__main__":
    ws_peer.BIN = sys.argv[2]
    scenarios = {f.__name__: f for f in [console, https, plot, endings, history, reading, screens, load]}
    scenarios[sys.argv[1]]()
    if sys.argv[1] != "load":
        print("ok")
