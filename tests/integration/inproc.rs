//! `bridge::bridge` in-process over Unix socket pairs: fast, exact checks of the
//! dispatcher (ordering, shutdown, closes, backpressure) without a pty or a binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use serial_bridge::bridge::{self, Options, Traffic};
use serial_bridge::endpoint::{Endpoint, Spec, Stream, WriteNow};
use serial_bridge::error::Error;
use serial_bridge::framing::Framing;

use crate::util::{PATIENCE, lines, read_exactly};

/// A socket pair: the bridge gets one end as an endpoint, the test plays the device.
/// With `fast`, the endpoint offers a write half that never waits, so the bridge's
/// fast path runs; without, every line takes the queued path.
fn endpoint(name: &str, fast: bool) -> (Endpoint, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    ours.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut stream = Stream::new(
        Box::new(theirs.try_clone().unwrap()),
        Box::new(theirs.try_clone().unwrap()),
    );
    if fast {
        stream = stream.with_direct(WriteNow::socket(theirs.into()));
    }
    (Endpoint::new(name, stream), ours)
}

type Running = (
    UnixStream,
    UnixStream,
    Sender<()>,
    JoinHandle<Result<[Traffic; 2], Error>>,
);

fn start(options: Options) -> Running {
    start_with(options, true)
}

fn start_with(options: Options, fast: bool) -> Running {
    let ((ea, a), (eb, b)) = (endpoint("A", fast), endpoint("B", fast));
    let (stop_tx, stop) = bounded(1);
    let handle = thread::spawn(move || bridge::bridge(ea, eb, &options, stop));
    (a, b, stop_tx, handle)
}

#[test]
fn lines_cross_both_ways_and_are_counted() {
    let (mut a, mut b, stop, handle) = start(Options::default());
    a.write_all(b"hello\nworld\n").unwrap();
    b.write_all(b"\x00\xff\r\n").unwrap();
    assert_eq!(read_exactly(&mut b, 12, PATIENCE), b"hello\nworld\n");
    assert_eq!(read_exactly(&mut a, 4, PATIENCE), b"\x00\xff\r\n");
    stop.send(()).unwrap();
    let traffic = handle.join().unwrap().unwrap();
    assert_eq!(
        traffic[0],
        Traffic {
            pieces: 2,
            bytes: 12
        }
    );
    assert_eq!(
        traffic[1],
        Traffic {
            pieces: 1,
            bytes: 4
        }
    );
}

#[test]
fn stop_forwards_partial_lines_after_their_whole_ones() {
    let (mut a, mut b, stop, handle) = start(Options::default());
    a.write_all(b"one\ntw").unwrap();
    b.write_all(b"x\ny").unwrap();
    assert_eq!(read_exactly(&mut b, 4, PATIENCE), b"one\n");
    assert_eq!(read_exactly(&mut a, 2, PATIENCE), b"x\n");
    stop.send(()).unwrap();
    assert_eq!(read_exactly(&mut b, 2, PATIENCE), b"tw");
    assert_eq!(read_exactly(&mut a, 1, PATIENCE), b"y");
    let traffic = handle.join().unwrap().unwrap();
    assert_eq!(
        traffic[0],
        Traffic {
            pieces: 2,
            bytes: 6
        }
    );
}

#[test]
fn a_dropped_stop_sender_stops_too() {
    let (_a, _b, stop, handle) = start(Options::default());
    drop(stop);
    assert!(handle.join().unwrap().is_ok());
}

#[test]
fn a_close_fails_naming_the_endpoint_after_forwarding_what_it_sent() {
    let (a, mut b, _stop, handle) = start(Options::default());
    (&a).write_all(b"last words\nunfinished").unwrap();
    drop(a);
    assert_eq!(
        read_exactly(&mut b, 21, PATIENCE),
        b"last words\nunfinished"
    );
    match handle.join().unwrap() {
        Err(Error::Closed { endpoint }) => assert_eq!(endpoint, "A"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flush_after_forwards_a_partial_line_after_silence() {
    let options = Options {
        flush_after: Some(Duration::from_millis(50)),
        ..Options::default()
    };
    let (mut a, mut b, _stop, _handle) = start(options);
    a.write_all(b"> ").unwrap();
    assert_eq!(read_exactly(&mut b, 2, PATIENCE), b"> ");
    a.write_all(b"ok\nnext> ").unwrap();
    assert_eq!(read_exactly(&mut b, 9, PATIENCE), b"ok\nnext> ");
}

#[test]
fn a_flood_one_way_does_not_hold_up_the_other() {
    flood_one_way(true);
}

#[test]
fn a_flood_one_way_does_not_hold_up_the_other_on_the_queued_path() {
    flood_one_way(false);
}

fn flood_one_way(fast: bool) {
    let (a, mut b, stop, handle) = start_with(Options::default(), fast);
    // Nobody reads B, so A -> B backs up into the bridge and then into A.
    let mut flood = a.try_clone().unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let flooder = thread::spawn(move || {
        let data = lines(b'F', 200_000);
        let _ = flood.write_all(&data);
    });
    thread::sleep(Duration::from_millis(200));
    let mut a = a;
    for i in 0..50 {
        let line = format!("reply {i}\n");
        b.write_all(line.as_bytes()).unwrap();
        let got = read_exactly(&mut a, line.len(), Duration::from_secs(2));
        assert_eq!(got, line.as_bytes());
    }
    // Now drain B: every flooded byte arrives, in order.
    let data = lines(b'F', 200_000);
    let mut got = vec![0; data.len()];
    b.set_read_timeout(Some(PATIENCE)).unwrap();
    b.read_exact(&mut got).unwrap();
    assert!(got == data, "flood arrived changed");
    flooder.join().unwrap();
    stop.send(()).unwrap();
    handle.join().unwrap().unwrap();
}

#[test]
fn raw_mode_forwards_each_read() {
    let options = Options {
        framing: Framing::Raw,
        ..Options::default()
    };
    let (mut a, mut b, _stop, _handle) = start(options);
    a.write_all(b"\x01\x02\n\x03").unwrap();
    assert_eq!(read_exactly(&mut b, 4, PATIENCE), b"\x01\x02\n\x03");
}

/// `bridge::run` on two specs, in a thread; returns its stop sender and handle.
fn run_specs(
    a: &str,
    b: &str,
    options: Options,
) -> (Sender<()>, JoinHandle<Result<[Traffic; 2], Error>>) {
    let (a, b): (Spec, Spec) = (a.parse().unwrap(), b.parse().unwrap());
    let (stop_tx, stop) = bounded(1);
    let handle = thread::spawn(move || bridge::run(&a, &b, &options, stop));
    (stop_tx, handle)
}

/// A loopback port that nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn after_run_returns_nothing_reconnects() {
    let port = free_port();
    let options = Options {
        reconnect: true,
        ..Options::default()
    };
    let (stop, handle) = run_specs("pty", &format!("tcp://127.0.0.1:{port}"), options);
    // Let the reopening thread try and fail a few times, then stop.
    let refused = Instant::now() + Duration::from_millis(400);
    while Instant::now() < refused {
        thread::sleep(Duration::from_millis(10));
    }
    stop.send(()).unwrap();
    handle.join().unwrap().unwrap();
    // Now the server comes up: no connection may arrive from the ended bridge. Its
    // next try would have come within 2 s (the longest wait between tries).
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    server.set_nonblocking(true).unwrap();
    let quiet = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet {
        if let Ok((_, peer)) = server.accept() {
            panic!("a connection from {peer} after run returned");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn after_run_returns_no_client_is_taken() {
    let port = free_port();
    let (stop, handle) = run_specs(
        "pty",
        &format!("tcp-listen://127.0.0.1:{port}"),
        Options::default(),
    );
    let deadline = Instant::now() + PATIENCE;
    let mut first = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) => {
                assert!(Instant::now() < deadline, "the listener never came up");
                thread::sleep(Duration::from_millis(5));
            }
        }
    };
    stop.send(()).unwrap();
    handle.join().unwrap().unwrap();
    // The client was closed, and the port is free again.
    first.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    assert!(matches!(first.read_to_end(&mut rest), Ok(_) | Err(_)));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener still takes clients after run returned"
    );
    TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}

#[test]
fn a_stop_during_a_hanging_connect_returns_at_once() {
    // A server whose backlog is full: a connect to it hangs.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    // SAFETY: listen(2) on a socket this test owns, with a backlog of 0.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&server);
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    let mut fillers = Vec::new();
    let mut hung = false;
    for _ in 0..64 {
        match TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(200),
        ) {
            Ok(stream) => fillers.push(stream),
            Err(_) => {
                hung = true;
                break;
            }
        }
    }
    assert!(hung, "the backlog never filled");
    for reconnect in [false, true] {
        let options = Options {
            reconnect,
            ..Options::default()
        };
        let (stop, handle) = run_specs("pty", &format!("tcp://127.0.0.1:{port}"), options);
        // Not waiting for anything: the connect is under way by then, or not yet
        // started; a stop must end it at once either way.
        thread::sleep(Duration::from_millis(300));
        let stopped = Instant::now();
        stop.send(()).unwrap();
        let traffic = handle.join().unwrap().expect("a stop is not a failure");
        let took = stopped.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "reconnect {reconnect}: {took:?}"
        );
        assert_eq!(traffic[0], Traffic::default());
    }
    drop(fillers);
}
