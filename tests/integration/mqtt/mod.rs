//! `mqtt://` against a real broker: each test starts its own mosquitto on a free
//! loopback port with a temporary config, and stops it after. mosquitto_sub and
//! mosquitto_pub stand in for the other machines. Here: the data, both ways; in
//! [`resilience`]: restarts, failures, status, credentials and scale.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, lines, read_exactly, write_all};
use broker::{Broker, have_mosquitto};

pub mod broker;
mod resilience;

/// Payloads that are easy to get wrong: NUL, 0xFF, invalid UTF-8, CR, empty.
fn awkward() -> Vec<Vec<u8>> {
    vec![
        b"plain".to_vec(),
        b"nul\x00inside".to_vec(),
        b"\xff\xfe not utf-8 \xc3\x28".to_vec(),
        b"crlf\r".to_vec(),
        Vec::new(),
        (0..=255u8).filter(|&b| b != b'\n').collect(),
    ]
}

#[test]
fn pty_and_mosquitto_clients_both_ways_byte_exact() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let sub = broker.sub("lab/out", 0);
    let mut pty = Pty::new();
    let _bridge = Bridge::start(&[&pty.path, &broker.url("pub=lab/out,sub=lab/in")]);
    let payloads = awkward();
    for payload in &payloads {
        write_all(&mut pty.master, &[payload.as_slice(), b"\n"].concat());
    }
    let got = sub.wait(payloads.len());
    assert!(got.iter().all(|(topic, _)| topic == "lab/out"), "{got:?}");
    let got: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, payloads);
    for payload in &payloads {
        broker.publish("lab/in", payload, 0);
        let line = [payload.as_slice(), b"\n"].concat();
        assert_eq!(read_exactly(&mut pty.master, line.len(), PATIENCE), line);
    }
}

#[test]
fn raw_mode_publishes_reads_and_adds_nothing() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let sub = broker.sub("raw/out", 0);
    let mut pty = Pty::new();
    let url = broker.url("pub=raw/out,sub=raw/in");
    let _bridge = Bridge::start(&["--raw", &pty.path, &url]);
    write_all(&mut pty.master, b"no newline\x00\xff");
    let got: Vec<u8> = sub.wait(1).into_iter().flat_map(|(_, p)| p).collect();
    assert_eq!(got, b"no newline\x00\xff");
    broker.publish("raw/in", b"as is\n\n", 0);
    assert_eq!(read_exactly(&mut pty.master, 7, PATIENCE), b"as is\n\n");
}

#[test]
fn a_message_longer_than_max_line_arrives_whole_in_pieces() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let mut pty = Pty::new();
    let url = broker.url("sub=long/in");
    let bridge = Bridge::start(&["--max-line", "100", &pty.path, &url]);
    let payload: Vec<u8> = (0..50_000u32)
        .map(|i| (i % 251) as u8)
        .filter(|&b| b != b'\n')
        .collect();
    broker.publish("long/in", &payload, 0);
    let line = [payload.as_slice(), b"\n"].concat();
    assert!(read_exactly(&mut pty.master, line.len(), PATIENCE) == line);
    bridge.wait_for_log("longer than --max-line");
}

#[test]
fn ctrl_c_stops_a_handshake_the_broker_never_answers() {
    // Something that takes the connection and never says a word, as a wrong port might.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = thread::spawn(move || silent.accept().map(|(stream, _)| stream));
    let bridge = Bridge::spawn(&["-", &format!("mqtt://127.0.0.1:{port},pub=x")]);
    let _stream = held.join().unwrap().expect("the bridge connects");
    bridge.signal("INT");
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stopping before the bridge started"),
        "{stderr}"
    );
}

#[test]
fn a_bridge_that_only_publishes_keeps_its_connection_alive() {
    if !have_mosquitto() {
        return;
    }
    // Nothing comes back to a bridge that only publishes at QoS 0, however busy it is:
    // its pings must go out anyway, or it would take the broker's silence for death.
    let broker = Broker::start("");
    let sub = broker.sub("busy/out", 0);
    let mut pty = Pty::new();
    let bridge = Bridge::start(&[&pty.path, &broker.url("pub=busy/out,keepalive=1")]);
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(3500) {
        write_all(&mut pty.master, b"tick\n");
        sent += 1;
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sub.wait(sent).len(), sent);
    assert!(
        !bridge.stderr().contains("no answer"),
        "{}",
        bridge.stderr()
    );
    bridge.signal("INT");
    let (status, stderr) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn wildcard_filters_take_matching_topics_only() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let (mut plus, mut hash) = (Pty::new(), Pty::new());
    let _one = Bridge::start(&[&plus.path, &broker.url("sub=lab/+/tx")]);
    let _two = Bridge::start(&[&hash.path, &broker.url("pub=out/x,sub=sensors/#")]);
    for (topic, payload) in [
        ("lab/a/tx", "one"),
        ("lab/a/rx", "not this"),
        ("lab/a/b/tx", "nor this"),
        ("sensors", "root"),
        ("sensors/a/b", "deep"),
        ("other/tx", "nowhere"),
        ("lab/b/tx", "two"),
    ] {
        broker.publish(topic, payload.as_bytes(), 0);
    }
    assert_eq!(read_exactly(&mut plus.master, 8, PATIENCE), b"one\ntwo\n");
    assert_eq!(
        read_exactly(&mut hash.master, 10, PATIENCE),
        b"root\ndeep\n"
    );
}

#[test]
fn qos1_both_ways_and_messages_wait_while_the_bridge_is_away() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let sub = broker.sub("q/out", 1);
    let mut pty = Pty::new();
    let url = broker.url("pub=q/out,sub=q/in,qos=1");
    let bridge = Bridge::start(&[&pty.path, &url]);
    assert!(
        bridge.stderr().contains("new session"),
        "{}",
        bridge.stderr()
    );
    let sent = lines(b'Q', 500);
    write_all(&mut pty.master, &sent);
    let got: Vec<u8> = sub
        .wait(500)
        .into_iter()
        .flat_map(|(_, p)| [p, b"\n".to_vec()].concat())
        .collect();
    assert!(got == sent, "lines changed on the way");
    broker.publish("q/in", b"\x00qos1\xff", 1);
    assert_eq!(
        read_exactly(&mut pty.master, 7, PATIENCE),
        b"\x00qos1\xff\n"
    );
    // Stopped, the bridge's session stays at the broker: what is published meanwhile
    // waits, and the same command (the same client id) gets it.
    bridge.signal("INT");
    let (status, _) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(0));
    broker.publish("q/in", b"while away", 1);
    let bridge = Bridge::start(&[&pty.path, &url]);
    assert!(bridge.stderr().contains("resuming its session"));
    assert_eq!(read_exactly(&mut pty.master, 11, PATIENCE), b"while away\n");
}

#[test]
fn two_bridges_through_one_broker_both_ways() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let (mut one, mut two) = (Pty::new(), Pty::new());
    let _a = Bridge::start(&[&one.path, &broker.url("pub=lab/uno1,sub=lab/uno2")]);
    let _b = Bridge::start(&[&two.path, &broker.url("pub=lab/uno2,sub=lab/uno1")]);
    let (to_two, to_one) = (lines(b'1', 2000), lines(b'2', 2000));
    let mut master = one.master_clone();
    let data = to_two.clone();
    let writer = thread::spawn(move || write_all(&mut master, &data));
    let mut master = two.master_clone();
    let data = to_one.clone();
    let writer2 = thread::spawn(move || write_all(&mut master, &data));
    assert!(read_exactly(&mut two.master, to_two.len(), PATIENCE) == to_two);
    assert!(read_exactly(&mut one.master, to_one.len(), PATIENCE) == to_one);
    writer.join().unwrap();
    writer2.join().unwrap();
}

#[test]
fn only_topics_sub_names_reach_the_device_whatever_a_kept_session_holds() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let mut pty = Pty::new();
    // An earlier run of the same client id subscribed to old/#, and its session stays.
    let old = Bridge::start(&[&pty.path, &broker.url("sub=old/#,qos=1,client-id=kept")]);
    old.signal("INT");
    assert_eq!(old.wait(PATIENCE).0.code(), Some(0));
    let url = broker.url("pub=x/out,sub=new/in,qos=1,client-id=kept");
    let bridge = Bridge::start(&[&pty.path, &url]);
    broker.publish("old/a", b"stale", 1);
    broker.publish("new/in", b"fresh", 1);
    // In the order they were published: had the stale one gone through, it came first.
    assert_eq!(read_exactly(&mut pty.master, 6, PATIENCE), b"fresh\n");
    bridge.wait_for_log("sub=new/in does not match it");
    bridge.signal("INT");
    let (status, log) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(0));
    let summary = format!(" -> {}: 1 line, 6 bytes, 1 dropped", pty.path);
    assert!(log.contains(&summary), "{log}");
    // Without sub= nothing at all reaches the device.
    let url = broker.url("pub=x/out,qos=1,client-id=kept");
    let bridge = Bridge::start(&[&pty.path, &url]);
    broker.publish("old/b", b"stale too", 1);
    bridge.wait_for_log("there is no sub=");
    bridge.signal("INT");
    let (_, log) = bridge.wait(PATIENCE);
    assert!(log.contains("1 dropped"), "{log}");
    write_all(&mut pty.master, b"");
    assert!(crate::util::read_for(&mut pty.master, Duration::from_millis(50)).is_empty());
}
