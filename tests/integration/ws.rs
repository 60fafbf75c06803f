//! `ws://` and `ws-listen://` with real peers: Python's `websockets` as clients and as
//! a server (tests/integration/ws_peer.py plays them and the devices), and a real
//! headless Chromium on the console page (tests/integration/browser.py).

use crate::util::{have, scenario};

fn websockets() -> bool {
    have("python3", &["-c", "import websockets.sync.client"])
}

#[test]
fn ws_listen_both_ways_byte_exact() {
    if websockets() {
        scenario("ws_peer.py", "listen_exact");
    }
}

#[test]
fn clients_fast_and_slow_get_every_message_whether_written_straight_or_by_their_writer() {
    if websockets() {
        scenario("ws_peer.py", "straight");
    }
}

#[test]
fn ws_listen_fans_out_and_drops_a_client_that_stops_reading() {
    if websockets() {
        scenario("ws_peer.py", "fanout");
    }
}

#[test]
fn ws_listen_checks_token_and_origin_and_answers_plain_http() {
    if websockets() {
        scenario("ws_peer.py", "guarded");
    }
}

#[test]
fn ws_client_against_a_server_that_goes_away() {
    if websockets() {
        scenario("ws_peer.py", "client");
    }
}

#[test]
fn long_and_partial_lines_cross_two_bridges_unchanged() {
    if websockets() {
        scenario("ws_peer.py", "chain");
    }
}

#[test]
fn an_echoing_client_gives_back_the_same_bytes() {
    if websockets() {
        scenario("ws_peer.py", "echo");
    }
}

#[test]
fn the_console_subprotocol_gives_history_and_sends_as_sent() {
    if websockets() {
        scenario("ws_peer.py", "console_protocol");
    }
}

#[test]
fn clients_that_stopped_reading_hold_lines_back_once_in_all() {
    if websockets() {
        scenario("ws_peer.py", "stuck_clients");
    }
}

#[test]
fn the_console_page_in_a_real_browser() {
    if chromium() {
        scenario("browser.py", "console");
    }
}

/// Whether headless Chromium and selenium are here for the page's tests.
fn chromium() -> bool {
    websockets()
        && have("python3", &["-c", "import selenium"])
        && have("/usr/bin/chromedriver", &["--version"])
}

#[test]
fn the_console_page_plots_numeric_lines_and_pause_holds_the_chart() {
    if chromium() {
        scenario("browser.py", "plot");
    }
}

#[test]
fn the_console_page_sends_each_line_ending_byte_for_byte() {
    if chromium() {
        scenario("browser.py", "endings");
    }
}

#[test]
fn the_console_page_shows_earlier_lines_and_names_the_device() {
    if chromium() {
        scenario("browser.py", "history");
    }
}

#[test]
fn the_console_page_scrolls_saves_filters_and_fits_a_phone() {
    if chromium() {
        scenario("browser.py", "reading");
    }
}

#[test]
fn the_console_page_over_https_in_a_real_browser() {
    if chromium() && have("openssl", &["version"]) {
        scenario("browser.py", "https");
    }
}

#[test]
fn a_stop_sends_listener_clients_everything_read() {
    if websockets() {
        scenario("ws_peer.py", "drain");
    }
}

#[test]
fn frames_that_break_the_protocol_fail_the_connection_and_reach_nobody() {
    if websockets() {
        scenario("ws_peer.py", "rule_breakers");
    }
}

#[test]
fn peers_that_stall_vanish_or_lie_about_their_host() {
    if websockets() {
        scenario("ws_peer.py", "hostile");
    }
}

#[test]
fn ws_listen_logs_the_address_to_open_and_it_serves_the_page() {
    use std::io::{Read, Write};
    let pty = crate::util::Pty::new();
    let bridge = crate::util::Bridge::start(&[&pty.path, "ws-listen://127.0.0.1:0,token=s3 cr&t"]);
    bridge.wait_for_log(" in a browser");
    let log = bridge.stderr();
    let url = log
        .split("open ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("an address in the log");
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback URL");
    let (port, path) = rest.split_once('/').unwrap();
    assert_eq!(path, "?token=s3%20cr%26t", "{log}");
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap())).unwrap();
    write!(
        http,
        "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<html"), "{answer}");
}

#[test]
fn a_client_gone_without_a_closing_frame_leaves_at_once_and_later_lines_count_as_dropped() {
    use std::io::{Read, Write};
    let mut pty = crate::util::Pty::new();
    let bridge =
        crate::util::Bridge::start(&["--log-level", "debug", &pty.path, "ws-listen://127.0.0.1:0"]);
    let port = bridge.listening_port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        client,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    bridge.wait_for_log("connected (1 of");
    // FIN only: no closing frame.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // Once the bridge has read the end ("finished sending" was the old way of noting
    // it, with the client still listed), a line reaches nobody.
    let deadline = std::time::Instant::now() + crate::util::PATIENCE;
    while !["finished sending", "left"]
        .iter()
        .any(|seen| bridge.stderr().contains(seen))
    {
        assert!(std::time::Instant::now() < deadline, "{}", bridge.stderr());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    crate::util::write_all(&mut pty.master, b"after\n");
    // Read, and routed: a stop between the two would leave it uncounted.
    bridge.wait_for_log("no client connected");
    bridge.signal("INT");
    let (status, log) = bridge.wait(std::time::Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("-> ws-listen://127.0.0.1:0: 0 lines, 0 bytes, 1 dropped"),
        "{log}"
    );
}

#[test]
fn a_page_whose_connection_would_be_refused_says_why_and_what_to_do() {
    use std::io::{Read, Write};
    let page = |port: u16, host: &str, path: &str| {
        let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            http,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        http.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer
    };
    let pty = crate::util::Pty::new();
    let bridge = crate::util::Bridge::start(&[&pty.path, "ws-listen://127.0.0.1:0"]);
    let port = bridge.listening_port();
    // By address or as localhost: the page connects.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert!(!page(port, &host, "/").contains("data-refused"), "{host}");
    }
    // By a name: the page says why it will not connect, and what to do.
    let named = page(port, &format!("board.example:{port}"), "/");
    assert!(
        named.contains("data-refused=\"This page was opened as http://board.example"),
        "{named}"
    );
    assert!(
        named.contains(&format!("http://localhost:{port}/")),
        "{named}"
    );
    assert!(named.contains("origin=http://board.example"), "{named}");
    // With a token, a page opened without it is told to use the logged address.
    let pty = crate::util::Pty::new();
    let bridge = crate::util::Bridge::start(&[&pty.path, "ws-listen://127.0.0.1:0,token=t<k>"]);
    let port = bridge.listening_port();
    let host = format!("board.example:{port}");
    assert!(page(port, &host, "/").contains("only pages opened with its token"));
    assert!(!page(port, &host, "/?token=t%3Ck%3E").contains("data-refused"));
}

#[test]
fn idle_connections_renewed_as_fast_as_they_close_do_not_lock_clients_out() {
    if websockets() {
        scenario("ws_peer.py", "crowded");
    }
}

#[test]
fn a_line_cut_off_after_pieces_went_on_is_ended_not_joined_to_the_next() {
    if websockets() {
        scenario("ws_peer.py", "cut_lines");
    }
}

#[test]
fn lines_queued_for_a_client_dropped_for_not_reading_count_as_dropped() {
    if websockets() {
        scenario("ws_peer.py", "stalled_client");
    }
}
