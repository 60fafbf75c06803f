//! `udp://` and `udp-listen://` with real peers: Rust sockets and socat on loopback.
//! Multicast is joined and sent on lo with a TTL of 0, broadcast goes to
//! 127.255.255.255: nothing leaves the machine.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, have, lines, read_exactly, run, spawn, write_all};

/// A receiving socket on loopback with a large buffer, so a burst is not lost to it.
fn receiver(at: &str) -> UdpSocket {
    let socket = UdpSocket::bind(at).expect("bind a receiver");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        use std::os::fd::AsRawFd;
        // SAFETY: sets an int option on a socket this test owns, from a live int.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set == 0 {
            break;
        }
    }
    socket
}

fn port(socket: &UdpSocket) -> u16 {
    socket.local_addr().unwrap().port()
}

/// The next datagram within `patience`.
fn recv(socket: &UdpSocket, patience: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0; 70_000];
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

/// Datagrams the kernel dropped at the UDP socket on `port` (its receive buffer was
/// full), from /proc/net/udp.
fn kernel_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.get(1).is_some_and(|addr| addr.ends_with(&local)))
        .filter_map(|fields| fields.last()?.parse::<u64>().ok())
        .sum()
}

/// The port a `udp-listen://...:0` bridge logged.
fn listening_port(bridge: &Bridge) -> u16 {
    bridge.wait_for_log("listening on port ");
    let log = bridge.stderr();
    log.split("listening on port ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .expect("port in the log")
}

/// Stops the bridge with Ctrl-C; returns its log, after checking it exited with 0.
fn stop(bridge: Bridge) -> String {
    bridge.signal("INT");
    let (status, log) = bridge.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{log}");
    log
}

/// The number before " dropped" in the summary line of the direction `arrow`
/// (`-> DESTINATION`).
fn dropped(log: &str, arrow: &str) -> u64 {
    let line = log
        .lines()
        .find(|line| line.contains(&format!(" {arrow}: ")))
        .unwrap_or_else(|| panic!("no summary for {arrow}: {log}"));
    line.split(", ")
        .find_map(|part| part.strip_suffix(" dropped"))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[test]
fn udp_both_ways_byte_exact_with_long_and_empty_lines() {
    let mut pty = Pty::new();
    let peer = receiver("127.0.0.1:0");
    let dest = format!("udp://127.0.0.1:{}", port(&peer));
    let bridge = Bridge::start(&["--max-line", "70000", &pty.path, &dest]);

    let every: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    let long = vec![b'L'; 60_000];
    let longer: Vec<u8> = (0..70_000u32)
        .map(|i| match (i % 251) as u8 {
            b'\n' => b'N',
            b => b,
        })
        .collect();
    let mut out = Vec::new();
    for line in [&every[..], b"", b"crlf\r", &long, &longer] {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    let mut master = pty.master_clone();
    let writer = thread::spawn(move || write_all(&mut master, &out));
    let expected: [&[u8]; 6] = [
        &every,
        b"",
        b"crlf\r",
        &long,
        &longer[..65_507],
        &longer[65_507..],
    ];
    let mut from = None;
    for want in expected {
        let (got, sender) = recv(&peer, PATIENCE).expect("a datagram");
        assert!(
            got == want,
            "{} bytes, wanted {}: {:?}",
            got.len(),
            want.len(),
            &got[..got.len().min(40)]
        );
        from = Some(sender);
    }
    writer.join().unwrap();

    // Datagrams back from the peer become lines: the delimiter added unless present,
    // one holding it becomes several lines.
    let back = from.unwrap();
    let big = vec![0xff; 60_000];
    for datagram in [&every[..], b"", b"ends\n", b"a\nb", &big] {
        peer.send_to(datagram, back).unwrap();
    }
    let mut want = every.clone();
    want.extend_from_slice(b"\n\nends\na\nb\n");
    want.extend_from_slice(&big);
    want.push(b'\n');
    assert!(read_exactly(&mut pty.master, want.len(), PATIENCE) == want);
    // From anyone else, nothing: the socket is connected to its peer.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"stranger", back).unwrap();
    peer.send_to(b"last", back).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 5, PATIENCE), b"last\n");
    let log = stop(bridge);
    // The line too long for one datagram counts once.
    assert!(log.contains(&format!("-> {dest}: 5 lines, ")), "{log}");
}

#[test]
fn a_burst_of_ten_thousand_datagrams_is_delivered_or_counted() {
    let pty = Pty::new();
    let peer = receiver("127.0.0.1:0");
    let dest = format!("udp://127.0.0.1:{}", port(&peer));
    let bridge = Bridge::start(&[&pty.path, &dest]);
    let sent = lines(b'U', 10_000);
    let mut master = pty.master_clone();
    let data = sent.clone();
    let writer = thread::spawn(move || write_all(&mut master, &data));
    let want: Vec<&[u8]> = sent.split_inclusive(|&b| b == b'\n').collect();
    let (mut got, mut next) = (0, 0);
    let mut last = Instant::now();
    while got + (kernel_drops(port(&peer)) as usize) < want.len()
        && last.elapsed() < Duration::from_secs(5)
    {
        let Some((datagram, _)) = recv(&peer, Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        // In order, each whole: the line whose number it carries, without its '\n'.
        let at = next
            + want[next..]
                .iter()
                .position(|line| line[..line.len() - 1] == datagram[..])
                .expect("a line sent, whole and in order");
        next = at + 1;
        got += 1;
    }
    writer.join().unwrap();
    pty.wait_drained();
    let log = stop(bridge);
    let counted = dropped(&log, &format!("-> {dest}"));
    let lost_at_peer = kernel_drops(port(&peer));
    assert_eq!(
        got as u64 + counted + lost_at_peer,
        10_000,
        "{got} arrived, {counted} counted by the bridge, {lost_at_peer} dropped by the \
         receiver's kernel: {log}"
    );

    // The other way: a burst into udp-listen, read at a pty's pace.
    let mut pty = Pty::new();
    let bridge = Bridge::start(&[&pty.path, "udp-listen://127.0.0.1:0"]);
    let at = listening_port(&bridge);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let data = sent.clone();
    let burst = thread::spawn(move || {
        for line in data.split_inclusive(|&b| b == b'\n') {
            sender.send_to(line, ("127.0.0.1", at)).unwrap();
        }
    });
    let mut seen = Vec::new();
    let mut buf = [0; 65_536];
    let mut last = Instant::now();
    let arrived = |seen: &[u8]| seen.iter().filter(|&&b| b == b'\n').count();
    while arrived(&seen) + (kernel_drops(at) as usize) < want.len()
        && last.elapsed() < Duration::from_secs(5)
    {
        if let Ok(n @ 1..) = pty.master.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            last = Instant::now();
        }
    }
    burst.join().unwrap();
    let mut next = 0;
    for line in seen.split_inclusive(|&b| b == b'\n') {
        next += want[next..]
            .iter()
            .position(|want| *want == line)
            .expect("each line whole and in order")
            + 1;
    }
    let kernel = kernel_drops(at);
    let log = stop(bridge);
    // What the kernel dropped, the bridge counted.
    let counted = dropped(&log, &format!("-> {}", pty.path));
    assert_eq!(counted, kernel, "{log}");
    assert_eq!(arrived(&seen) as u64 + counted, 10_000, "{log}");
}

#[test]
fn udp_listen_takes_two_senders_and_replies_to_each() {
    let mut pty = Pty::new();
    let bridge = Bridge::start(&[&pty.path, "udp-listen://127.0.0.1:0"]);
    let at = ("127.0.0.1", listening_port(&bridge));

    // Before anyone speaks, lines reach nobody and are counted.
    write_all(&mut pty.master, b"early\n");
    bridge.wait_for_log("no peer heard from in the last 60s");
    let (one, two) = (receiver("127.0.0.1:0"), receiver("127.0.0.1:0"));
    one.send_to(b"from one", at).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 9, PATIENCE), b"from one\n");
    bridge.wait_for_log("1 line dropped while no peer was heard from");
    two.send_to(b"from two\n", at).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 9, PATIENCE), b"from two\n");
    bridge.wait_for_log(&format!("heard from {}", two.local_addr().unwrap()));
    write_all(&mut pty.master, b"to both\n");
    for peer in [&one, &two] {
        assert_eq!(recv(peer, PATIENCE).unwrap().0, b"to both");
    }
    let log = stop(bridge);
    assert!(
        log.contains("-> udp-listen://127.0.0.1:0: 1 line, "),
        "{log}"
    );
    assert_eq!(dropped(&log, "-> udp-listen://127.0.0.1:0"), 1, "{log}");
}

#[test]
fn udp_listen_forgets_silent_peers_and_reply_names_one_destination() {
    let mut pty = Pty::new();
    let bridge = Bridge::start(&[&pty.path, "udp-listen://127.0.0.1:0,timeout=1"]);
    let at = ("127.0.0.1", listening_port(&bridge));
    let peer = receiver("127.0.0.1:0");
    peer.send_to(b"hi", at).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 3, PATIENCE), b"hi\n");
    write_all(&mut pty.master, b"soon\n");
    assert_eq!(recv(&peer, PATIENCE).unwrap().0, b"soon");
    // Silent for the timeout, it gets no more.
    let deadline = Instant::now() + PATIENCE;
    while !bridge.stderr().contains("silent for 1s") {
        assert!(Instant::now() < deadline, "{}", bridge.stderr());
        write_all(&mut pty.master, b"later\n");
        pty.wait_drained();
        thread::sleep(Duration::from_millis(100));
    }
    while let Some((datagram, _)) = recv(&peer, Duration::from_millis(100)) {
        assert_eq!(datagram, b"later");
    }
    stop(bridge);

    // reply=: every line to that address, none to the senders.
    let mut pty = Pty::new();
    let fixed = receiver("127.0.0.1:0");
    let reply = format!("udp-listen://127.0.0.1:0,reply=127.0.0.1:{}", port(&fixed));
    let bridge = Bridge::start(&[&pty.path, &reply]);
    let at = ("127.0.0.1", listening_port(&bridge));
    let sender = receiver("127.0.0.1:0");
    sender.send_to(b"reading", at).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 8, PATIENCE), b"reading\n");
    write_all(&mut pty.master, b"one\ntwo\n");
    assert_eq!(recv(&fixed, PATIENCE).unwrap().0, b"one");
    assert_eq!(recv(&fixed, PATIENCE).unwrap().0, b"two");
    assert!(recv(&sender, Duration::from_millis(300)).is_none());
    stop(bridge);
}

#[test]
fn multicast_both_ways_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let mut pty = Pty::new();
    let listen = format!("udp-listen://127.0.0.1:0,group={group}");
    let bridge = Bridge::start(&[&pty.path, &listen]);
    let at = listening_port(&bridge);
    assert!(
        bridge
            .stderr()
            .contains("in group 239.255.77.1 on 127.0.0.1")
    );
    let sender = receiver("127.0.0.1:0");
    sender.set_multicast_ttl_v4(0).unwrap();
    sender.send_to(b"to the group", (group, at)).unwrap();
    assert_eq!(
        read_exactly(&mut pty.master, 13, PATIENCE),
        b"to the group\n"
    );
    write_all(&mut pty.master, b"answer\n");
    assert_eq!(recv(&sender, PATIENCE).unwrap().0, b"answer");
    stop(bridge);

    // udp:// to a group: out on lo (bound to 127.0.0.1), TTL 0.
    let out_group = Ipv4Addr::new(239, 255, 77, 2);
    let member = UdpSocket::bind((out_group, 0)).unwrap();
    member
        .join_multicast_v4(&out_group, &Ipv4Addr::LOCALHOST)
        .unwrap();
    member
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut pty = Pty::new();
    let dest = format!("udp://{out_group}:{},bind=127.0.0.1:0,ttl=0", port(&member));
    let bridge = Bridge::start(&[&pty.path, &dest]);
    write_all(&mut pty.master, b"multicast\n");
    let (datagram, from) = recv(&member, PATIENCE).unwrap();
    assert_eq!(datagram, b"multicast");
    // Replies come from members' own addresses: taken from anyone.
    member.send_to(b"member", from).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 7, PATIENCE), b"member\n");
    stop(bridge);
}

#[test]
fn broadcast_needs_broadcast_on() {
    let pty = Pty::new();
    let (code, _, err) = run(&[&pty.path, "udp://127.255.255.255:9"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err.trim_end(),
        "serial-bridge: udp://127.255.255.255:9: cannot open: 127.255.255.255 is a \
         broadcast address; add broadcast=on to send to every machine on that network"
    );
    let (code, _, err) = run(&[&pty.path, "udp://255.255.255.255:9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("add broadcast=on"), "{err}");

    let mut pty = Pty::new();
    let everyone = receiver("127.255.255.255:0");
    let dest = format!(
        "udp://127.255.255.255:{},broadcast=on,bind=127.0.0.1:0",
        port(&everyone)
    );
    let bridge = Bridge::start(&[&pty.path, &dest]);
    write_all(&mut pty.master, b"to all\n");
    assert_eq!(recv(&everyone, PATIENCE).unwrap().0, b"to all");
    stop(bridge);
}

#[test]
fn a_peer_that_is_not_listening_is_counted_and_the_bridge_goes_on() {
    let closed = port(&UdpSocket::bind("127.0.0.1:0").unwrap());
    let mut pty = Pty::new();
    let dest = format!("udp://127.0.0.1:{closed}");
    let bridge = Bridge::start(&[&pty.path, &dest]);
    let deadline = Instant::now() + PATIENCE;
    while !bridge.stderr().contains("port unreachable") {
        assert!(Instant::now() < deadline, "{}", bridge.stderr());
        write_all(&mut pty.master, b"anyone?\n");
        pty.wait_drained();
    }
    // Someone listens now: lines arrive.
    let peer = receiver(&format!("127.0.0.1:{closed}"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "{}", bridge.stderr());
        write_all(&mut pty.master, b"there\n");
        // What was sent just before it was bound may come first.
        match recv(&peer, Duration::from_millis(100)) {
            Some((datagram, _)) if datagram == b"there" => break,
            Some((datagram, _)) => assert_eq!(datagram, b"anyone?"),
            None => {}
        }
    }
    let log = stop(bridge);
    assert!(dropped(&log, &format!("-> {dest}")) > 0, "{log}");
}

#[test]
fn socat_sends_and_receives() {
    if !have("socat", &["-V"]) {
        return;
    }
    let mut pty = Pty::new();
    let free = port(&UdpSocket::bind("127.0.0.1:0").unwrap());
    let mut socat = spawn(
        Command::new("socat")
            .args(["-u", &format!("UDP-RECV:{free},bind=127.0.0.1"), "-"])
            .stdout(Stdio::piped()),
    );
    let dest = format!("udp://127.0.0.1:{free}");
    let bridge = Bridge::start(&[&pty.path, &dest]);
    let mut out = socat.stdout.take().unwrap();
    // socat may not be bound yet: send until it hears one (a line per datagram).
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0; 64];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let got = loop {
        assert!(Instant::now() < deadline);
        write_all(&mut pty.master, b"ping\n");
        if let Ok(got) = rx.recv_timeout(Duration::from_millis(100)) {
            break got;
        }
    };
    assert!(got.starts_with(b"ping") && got.iter().all(|&b| b"ping".contains(&b)));
    stop(bridge);
    let _ = socat.kill();
    let _ = socat.wait();

    // socat as a sender into udp-listen: each read of its input is one datagram.
    let mut pty = Pty::new();
    let bridge = Bridge::start(&[&pty.path, "udp-listen://127.0.0.1:0"]);
    let at = listening_port(&bridge);
    let mut socat = spawn(
        Command::new("socat")
            .args(["-u", "-", &format!("UDP-SENDTO:127.0.0.1:{at}")])
            .stdin(Stdio::piped()),
    );
    use std::io::Write;
    socat
        .stdin
        .take()
        .unwrap()
        .write_all(b"from socat\n")
        .unwrap();
    assert_eq!(read_exactly(&mut pty.master, 11, PATIENCE), b"from socat\n");
    let _ = socat.wait();
    stop(bridge);
}

#[test]
fn raw_sends_each_read_and_bad_addresses_fail_to_open() {
    let mut pty = Pty::new();
    let peer = receiver("127.0.0.1:0");
    let dest = format!("udp://127.0.0.1:{}", port(&peer));
    let bridge = Bridge::start(&["--raw", &pty.path, &dest]);
    write_all(&mut pty.master, b"no newline\n\r");
    let (got, from) = recv(&peer, PATIENCE).unwrap();
    assert!(b"no newline\n\r".starts_with(&got), "{got:?}");
    peer.send_to(b"as is", from).unwrap();
    assert_eq!(read_exactly(&mut pty.master, 5, PATIENCE), b"as is");
    stop(bridge);

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy = format!("udp-listen://127.0.0.1:{}", port(&taken));
    for (endpoint, why) in [
        (busy.as_str(), "address in use"),
        (
            "udp://no-such-host.invalid:9",
            "cannot open: failed to lookup address",
        ),
        (
            "udp-listen://127.0.0.1:9,reply=no-such-host.invalid:9",
            "cannot open",
        ),
    ] {
        let (code, _, err) = run(&[&pty.path, endpoint]);
        assert_eq!(code, 3, "{endpoint}: {err}");
        assert!(
            err.starts_with(&format!(
                "serial-bridge: {}",
                endpoint.split(',').next().unwrap()
            )),
            "{err}"
        );
        assert!(err.contains(why), "{endpoint}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn an_ipv4_peer_behind_an_ipv6_address_gets_datagrams_ipv4_can_carry() {
    let pty = Pty::new();
    let peer = receiver("127.0.0.1:0");
    let dest = format!("udp://[::ffff:127.0.0.1]:{}", port(&peer));
    let bridge = Bridge::start(&["--max-line", "100000", &pty.path, &dest]);
    let line = vec![b'M'; 65_520];
    let mut master = pty.master_clone();
    let data = [line.clone(), b"\n".to_vec()].concat();
    let writer = thread::spawn(move || write_all(&mut master, &data));
    assert_eq!(recv(&peer, PATIENCE).unwrap().0.len(), 65_507);
    assert_eq!(recv(&peer, PATIENCE).unwrap().0.len(), 13);
    writer.join().unwrap();
    let log = stop(bridge);
    assert!(
        log.contains(&format!("-> {dest}: 1 line, 65521 bytes")),
        "{log}"
    );
}
