//! The other endpoint kinds with real peers: TCP clients and servers (Rust sockets,
//! socat, Python, pyserial's `socket://`), stdio, and the `pty` endpoint.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, have, lines, read_exactly, run, spawn, write_all};

/// Starts a bridge between a pty and `tcp-listen://127.0.0.1:0`; returns the port.
fn listen(extra: &[&str]) -> (Pty, Bridge, u16) {
    let pty = Pty::new();
    let mut args = extra.to_vec();
    args.extend([pty.path.as_str(), "tcp-listen://127.0.0.1:0"]);
    let bridge = Bridge::start(&args);
    let port = bridge.listening_port();
    (pty, bridge, port)
}

fn client(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream
}

/// Waits until the bridge has logged `count` connected clients.
fn wait_clients(bridge: &Bridge, count: usize) {
    bridge.wait_for_log(&format!("connected ({count} of"));
}

#[test]
fn serial_to_tcp_listen_both_ways_byte_exact() {
    let (mut pty, bridge, port) = listen(&[]);
    let mut c = client(port);
    wait_clients(&bridge, 1);
    let to_client = lines(b'S', 5000);
    let to_serial = lines(b'C', 5000);
    let mut writer = c.try_clone().unwrap();
    let sent = to_serial.clone();
    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut master = pty.master_clone();
    let data = to_client.clone();
    let w2 = thread::spawn(move || write_all(&mut master, &data));
    assert!(read_exactly(&mut c, to_client.len(), PATIENCE) == to_client);
    assert!(read_exactly(&mut pty.master, to_serial.len(), PATIENCE) == to_serial);
    w.join().unwrap();
    w2.join().unwrap();
}

#[test]
fn two_clients_get_every_line_and_send_whole_lines() {
    let (mut pty, bridge, port) = listen(&["--max-clients", "2"]);
    let (mut one, mut two) = (client(port), client(port));
    wait_clients(&bridge, 2);
    write_all(&mut pty.master, b"to all\n");
    assert_eq!(read_exactly(&mut one, 7, PATIENCE), b"to all\n");
    assert_eq!(read_exactly(&mut two, 7, PATIENCE), b"to all\n");
    // Half a line from one client, a whole line from the other, then the rest:
    // the serial side sees two whole lines, never a mix.
    one.write_all(b"first ha").unwrap();
    // Not a wait for anything: it only makes it likely that the half line is read
    // first. The assertions hold in either order.
    thread::sleep(Duration::from_millis(100));
    two.write_all(b"second\n").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 7, PATIENCE), b"second\n");
    one.write_all(b"lf\n").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 11, PATIENCE), b"first half\n");
    // A third client is refused with one line, and closed.
    let mut third = client(port);
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut refusal = String::new();
    third.read_to_string(&mut refusal).unwrap();
    assert_eq!(
        refusal,
        "serial-bridge: busy: already serving 2 client(s)\n"
    );
}

#[test]
fn clients_fast_and_slow_get_every_byte_whether_written_straight_or_by_their_writer() {
    // A device handing over one line per write (each goes straight to a client with
    // nothing queued), then a burst a slow client cannot keep up with (its writer
    // takes over, perhaps mid-line, and straight writes wait behind it).
    let (mut pty, bridge, port) = listen(&["--max-clients", "3"]);
    let clients: Vec<TcpStream> = (0..3).map(|_| client(port)).collect();
    wait_clients(&bridge, 3);
    let paced = lines(b'P', 2000);
    let burst = lines(b'B', 300_000);
    let want = [paced.clone(), burst.clone()].concat();
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let n = want.len();
            thread::spawn(move || {
                if i == 0 {
                    return read_exactly(&mut c, n, PATIENCE);
                }
                // Slow: small reads with a pause between them. The socket's read
                // timeout is short: a loaded machine may leave it with nothing to read
                // for longer, which is not an end.
                let mut got = Vec::with_capacity(n);
                let mut chunk = [0u8; 700];
                let deadline = Instant::now() + PATIENCE;
                while got.len() < n {
                    let k = match c.read(&mut chunk) {
                        Ok(k) => k,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            assert!(
                                Instant::now() < deadline,
                                "stalled after {} bytes",
                                got.len()
                            );
                            continue;
                        }
                        Err(e) => panic!("after {} bytes: {e}", got.len()),
                    };
                    assert!(k > 0, "closed after {} bytes", got.len());
                    got.extend_from_slice(&chunk[..k]);
                    thread::sleep(Duration::from_micros(50 * i as u64));
                }
                got
            })
        })
        .collect();
    for line in paced.split_inclusive(|&b| b == b'\n') {
        write_all(&mut pty.master, line);
    }
    write_all(&mut pty.master, &burst);
    for reader in readers {
        let got = reader.join().unwrap();
        let differ = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            got == want,
            "a client got {} bytes of the {} sent, the first different at {differ:?}",
            got.len(),
            want.len()
        );
    }
    bridge.signal("INT");
    let (status, log) = bridge.wait(PATIENCE);
    assert!(status.success(), "{log}");
    assert!(
        log.contains("302000 lines") && !log.contains("dropped"),
        "{log}"
    );
}

#[test]
fn socat_client_of_tcp_listen() {
    if !have("socat", &["-V"]) {
        return;
    }
    let (mut pty, bridge, port) = listen(&[]);
    let mut socat = spawn(
        Command::new("socat")
            .args(["-", &format!("TCP:127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    wait_clients(&bridge, 1);
    socat
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"via socat\n")
        .unwrap();
    assert_eq!(read_exactly(&mut pty.master, 10, PATIENCE), b"via socat\n");
    write_all(&mut pty.master, b"back \xff\x00\n");
    let mut got = [0; 8];
    socat.stdout.as_mut().unwrap().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back \xff\x00\n");
    socat.kill().unwrap();
    socat.wait().unwrap();
}

#[test]
fn pyserial_socket_url_client_of_tcp_listen() {
    if !have("python3", &["-c", "import serial"]) {
        return;
    }
    let (mut pty, bridge, port) = listen(&[]);
    let script = format!(
        "import serial, sys\n\
         s = serial.serial_for_url('socket://127.0.0.1:{port}', timeout=30)\n\
         s.write(b'hello from pyserial\\n')\n\
         sys.stdout.write(repr(s.readline()))\n"
    );
    let mut python = spawn(
        Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped()),
    );
    wait_clients(&bridge, 1);
    assert_eq!(
        read_exactly(&mut pty.master, 20, PATIENCE),
        b"hello from pyserial\n"
    );
    write_all(&mut pty.master, b"hello from serial\n");
    let mut out = String::new();
    python
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(python.wait().unwrap().success());
    assert_eq!(out, "b'hello from serial\\n'");
}

#[test]
fn serial_to_tcp_client_against_a_server() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut pty = Pty::new();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let bridge = Bridge::start(&[&pty.path, &tcp]);
    let (mut conn, _) = server.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    write_all(&mut pty.master, b"up\n");
    assert_eq!(read_exactly(&mut conn, 3, PATIENCE), b"up\n");
    conn.write_all(b"down\n").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 5, PATIENCE), b"down\n");
    // The server going away ends the bridge with exit 1, naming it.
    drop(conn);
    let (status, stderr) = bridge.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("serial-bridge: {tcp}: port closed")),
        "{stderr}"
    );
}

#[test]
fn stdio_both_ways_and_eof_ends_with_0() {
    let mut pty = Pty::new();
    let mut child = spawn(
        Command::new(env!("CARGO_BIN_EXE_serial-bridge"))
            .args(["-", &pty.path])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("bridging") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start");
    }
    write_all(&mut pty.master, b"from device\n");
    let mut stdout = child.stdout.take().unwrap();
    let mut got = [0; 12];
    stdout.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from device\n");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"to device\nlast, no newline").unwrap();
    drop(stdin);
    assert_eq!(
        read_exactly(&mut pty.master, 26, PATIENCE),
        b"to device\nlast, no newline"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after stdin EOF");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn pty_endpoint_link_takes_a_serial_program() {
    let dir = std::env::temp_dir().join(format!("sb-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ttyBRIDGE");
    let spec = format!("pty:{}", link.display());
    let mut device = Pty::new();
    let bridge = Bridge::start(&[&device.path, &spec]);
    // A program that only speaks serial opens the link like a port.
    let mut port = serialport::new(link.to_str().unwrap(), 9600)
        .timeout(Duration::from_millis(50))
        .open()
        .expect("open the pty through its link");
    port.write_all(b"AT\r\n").unwrap();
    assert_eq!(read_exactly(&mut device.master, 4, PATIENCE), b"AT\r\n");
    write_all(&mut device.master, b"OK\r\n");
    assert_eq!(read_exactly(&mut port, 4, PATIENCE), b"OK\r\n");
    // It may leave and come back without ending the bridge.
    drop(port);
    let mut port = serialport::new(link.to_str().unwrap(), 9600)
        .timeout(Duration::from_millis(50))
        .open()
        .expect("reopen");
    port.write_all(b"again\n").unwrap();
    assert_eq!(read_exactly(&mut device.master, 6, PATIENCE), b"again\n");
    bridge.signal("INT");
    let (status, _) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed at exit"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn network_errors_are_one_line_with_their_exit_code() {
    let pty = Pty::new();
    // Unknown scheme and bad addresses: exit 2.
    for (spec, why) in [
        ("gopher://localhost:80", "unknown scheme"),
        ("tcp://localhost", "expected tcp://HOST:PORT"),
        ("tcp-listen://nowhere:80", "must be an IP address"),
    ] {
        let (code, _, err) = run(&[&pty.path, spec]);
        assert_eq!(code, 2, "{spec}: {err}");
        assert!(
            err.contains(why) && err.lines().count() == 1,
            "{spec}: {err}"
        );
    }
    // A refused connection and a port in use: exit 3.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, _, err) = run(&[&pty.path, &format!("tcp-listen://127.0.0.1:{port}")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("address in use"), "{err}");
    drop(taken);
    let (code, _, err) = run(&[&pty.path, &format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn a_client_that_stops_reading_is_dropped_without_stalling_the_other() {
    let (mut pty, bridge, port) = listen(&["--max-clients", "2"]);
    let (mut reading, stuck) = (client(port), client(port));
    wait_clients(&bridge, 2);
    // Far more than the stuck client's socket buffers and queue can hold.
    let flood = lines(b'F', 300_000);
    let mut master = pty.master_clone();
    let sent = flood.clone();
    let writer = thread::spawn(move || write_all(&mut master, &sent));
    assert!(read_exactly(&mut reading, flood.len(), PATIENCE) == flood);
    writer.join().unwrap();
    bridge.wait_for_log("is not reading; dropped it");
    // The bridge still works for the client that reads.
    write_all(&mut pty.master, b"still here\n");
    assert_eq!(read_exactly(&mut reading, 11, PATIENCE), b"still here\n");
    drop(stuck);
}

#[test]
fn a_clients_lines_all_arrive_when_the_bridge_stops_mid_flood() {
    // A stop while a client floods: what reaches the port is exactly a prefix of what
    // the client sent (whole lines, then the partial one), never lines with a gap.
    for round in 0..4 {
        let (pty, bridge, port) = listen(&[]);
        let c = client(port);
        wait_clients(&bridge, 1);
        let mut data = lines(b'C', 200_000);
        data.extend_from_slice(b"no newline at the end");
        let sent = data.clone();
        let mut flood = c.try_clone().unwrap();
        let flooder = thread::spawn(move || {
            let _ = flood.write_all(&sent);
        });
        let mut master = pty.master_clone();
        let arrived = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&arrived);
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0; 65536];
            let mut quiet_since = Instant::now();
            // Until the bridge has been gone and the pty quiet for a while.
            while quiet_since.elapsed() < Duration::from_millis(500) {
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        got.extend_from_slice(&buf[..n]);
                        count.store(got.len(), Ordering::Release);
                        quiet_since = Instant::now();
                    }
                    _ => {}
                }
            }
            got
        });
        // Stop once lines are flowing, at a different point each round.
        let deadline = Instant::now() + PATIENCE;
        while arrived.load(Ordering::Acquire) < 50_000 * (round + 1) {
            assert!(Instant::now() < deadline, "the flood did not start");
            thread::sleep(Duration::from_millis(1));
        }
        bridge.signal("INT");
        let (status, log) = bridge.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{log}");
        let got = reader.join().unwrap();
        drop(c.shutdown(std::net::Shutdown::Both));
        flooder.join().unwrap();
        assert!(!got.is_empty(), "nothing arrived: {log}");
        assert!(
            data.starts_with(&got),
            "round {round}: {} bytes arrived but are not a prefix of what was sent: {log}",
            got.len()
        );
    }
}

#[test]
fn flush_after_forwards_a_clients_prompt() {
    let (mut pty, bridge, port) = listen(&["--flush-after", "50", "--max-clients", "2"]);
    let (mut one, mut two) = (client(port), client(port));
    wait_clients(&bridge, 2);
    one.write_all(b"one> ").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 5, PATIENCE), b"one> ");
    two.write_all(b"two\nthree> ").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 11, PATIENCE), b"two\nthree> ");
    one.write_all(b"ok\n").unwrap();
    assert_eq!(read_exactly(&mut pty.master, 3, PATIENCE), b"ok\n");
}

#[test]
fn a_half_closed_client_still_gets_the_reply() {
    // `printf 'AT\n' | nc -N host port`: the client stops sending, then waits.
    let (mut pty, bridge, port) = listen(&[]);
    let mut c = client(port);
    wait_clients(&bridge, 1);
    c.write_all(b"AT\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 3, PATIENCE), b"AT\n");
    write_all(&mut pty.master, b"OK\n");
    assert_eq!(read_exactly(&mut c, 3, PATIENCE), b"OK\n");
    // Its place goes to a newcomer, though.
    let mut next = client(port);
    bridge.wait_for_log("dropped to make room");
    write_all(&mut pty.master, b"hi\n");
    assert_eq!(read_exactly(&mut next, 3, PATIENCE), b"hi\n");
}

#[test]
fn lines_with_no_client_are_counted_as_dropped() {
    let (mut pty, bridge, port) = listen(&[]);
    write_all(&mut pty.master, b"one\ntwo\nthree\n");
    bridge.wait_for_log("no client connected; dropping lines");
    pty.wait_drained();
    let mut c = client(port);
    bridge.wait_for_log("3 lines dropped while no client was connected");
    write_all(&mut pty.master, b"four\n");
    assert_eq!(read_exactly(&mut c, 5, PATIENCE), b"four\n");
    bridge.signal("INT");
    let (status, log) = bridge.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains(": 1 line, 5 bytes, 3 dropped"), "{log}");
}
