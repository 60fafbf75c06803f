//! `mqtt://` when things go wrong or grow: a broker restart under traffic, a broker
//! going away, status topics, credentials, bad settings, and 20 bridges at once.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::broker::{Broker, cpu_seconds, have_mosquitto, rss_kib};
use crate::util::{Bridge, PATIENCE, Pty, read_exactly, run, write_all};

/// The figures in a bridge's summary line for the direction starting with `from`.
fn summary(stderr: &str, from: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(&format!("] {from} -> ")))
        .unwrap_or_else(|| panic!("no summary for {from}: {stderr}"));
    let number = |word: &str| {
        line.split(", ")
            .find_map(|part| part.strip_suffix(word)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        number(" dropped"),
        number(" reconnects").max(number(" reconnect")),
    )
}

#[test]
fn broker_restart_with_reconnect_and_qos1_loses_nothing_silently() {
    if !have_mosquitto() {
        return;
    }
    let mut broker = Broker::start("persistence true\npersistence_location ./\n");
    let (one, mut two) = (Pty::new(), Pty::new());
    let opts = ["--reconnect", "--queue", "5000"];
    let url_a = broker.url("pub=r/a,sub=r/b,qos=1");
    let url_b = broker.url("pub=r/b,sub=r/a,qos=1");
    let a = Bridge::start(&[&opts[..], &[one.path.as_str(), url_a.as_str()]].concat());
    let b = Bridge::start(&[&opts[..], &[two.path.as_str(), url_b.as_str()]].concat());
    const COUNT: usize = 1500;
    let line = |i: usize| format!("line {i:06}\n").into_bytes();
    let mut master = one.master_clone();
    let writer = thread::spawn(move || {
        for i in 0..COUNT {
            write_all(&mut master, &line(i));
            // Steady traffic, about 500 lines a second.
            thread::sleep(Duration::from_millis(2));
        }
    });
    // Restart the broker a third of the way through.
    let mut got = Vec::new();
    while got.len() < 500 * 12 {
        got.extend(read_exactly(&mut two.master, 12, PATIENCE));
    }
    broker.stop();
    broker.run();
    writer.join().unwrap();
    a.wait_for_log("back after");
    b.wait_for_log("back after");
    // Every line arrives (none was dropped: the queue holds the outage), some perhaps
    // twice, as QoS 1 allows.
    let mut seen = vec![0u32; COUNT];
    let deadline = Instant::now() + PATIENCE;
    while seen.contains(&0) {
        if Instant::now() >= deadline {
            let missing: Vec<usize> = (0..COUNT).filter(|&i| seen[i] == 0).collect();
            a.signal("INT");
            b.signal("INT");
            panic!(
                "missing lines {missing:?}\nA: {}\nB: {}\nbroker: {}",
                a.wait(PATIENCE).1,
                b.wait(PATIENCE).1,
                broker.log()
            );
        }
        got.extend(crate::util::read_for(
            &mut two.master,
            Duration::from_millis(100),
        ));
        seen.iter_mut().for_each(|n| *n = 0);
        // Whole lines only: the last one may still be on its way.
        let whole = got.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
        for l in got[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let text = std::str::from_utf8(l).expect("lines arrive whole");
            let i: usize = text.strip_prefix("line ").unwrap().parse().unwrap();
            seen[i] += 1;
        }
    }
    let duplicates: u32 = seen.iter().map(|n| n - 1).sum();
    a.signal("INT");
    b.signal("INT");
    let (_, log_a) = a.wait(PATIENCE);
    let (_, log_b) = b.wait(PATIENCE);
    let (dropped, reconnects) = summary(&log_a, &one.path);
    eprintln!("broker restart: {COUNT} lines, {duplicates} duplicates, {dropped} dropped");
    assert_eq!(dropped, 0, "{log_a}");
    assert!(reconnects >= 1, "{log_a}");
    assert_eq!(
        summary(&log_b, &url_b.replace(",qos=1", "")).0,
        0,
        "{log_b}"
    );
}

#[test]
fn without_reconnect_the_broker_going_away_is_exit_1() {
    if !have_mosquitto() {
        return;
    }
    let mut broker = Broker::start("");
    let pty = Pty::new();
    let url = broker.url("pub=x/out,sub=x/in");
    let bridge = Bridge::start(&[&pty.path, &url]);
    broker.stop();
    let (status, stderr) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let name = url.replace("mqtt://", "");
    assert!(
        stderr.contains(&format!(
            "serial-bridge: mqtt://{name}: read failed: the broker closed the connection"
        )),
        "{stderr}"
    );
}

#[test]
fn status_goes_offline_by_will_on_kill_and_by_goodbye_on_a_stop() {
    if !have_mosquitto() {
        return;
    }
    let broker = Broker::start("");
    let (p1, p2) = (Pty::new(), Pty::new());
    let mut killed = Bridge::start(&[&p1.path, &broker.url("pub=s/1,status=st/one")]);
    let url = broker.url("pub=s/2,status=st/two,client-id=two");
    let stopped = Bridge::start(&[&p2.path, &url]);
    broker.wait_retained("st/one", "online");
    broker.wait_retained("st/two", "online");
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    broker.wait_retained("st/one", "offline");
    stopped.signal("INT");
    let (status, stderr) = stopped.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    broker.wait_retained("st/two", "offline");
    // A clean stop sends DISCONNECT: the broker logs a disconnection, not a lost client.
    broker.wait_for_log("Client two disconnected.");
}

#[test]
fn credentials_bad_missing_and_good() {
    if !have_mosquitto() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sb-mqtt-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    let made = Command::new("mosquitto_passwd")
        .args(["-c", "-b", users.to_str().unwrap(), "lab", "s3cret"])
        .status()
        .unwrap();
    assert!(made.success());
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}",
        users.display()
    ));
    let (good, bad) = (dir.join("good"), dir.join("bad"));
    std::fs::write(&good, "s3cret\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();
    let port = broker.port;
    let at = |file: &PathBuf| {
        format!(
            "mqtt://lab@127.0.0.1:{port},pub=c/out,password-file={}",
            file.display()
        )
    };
    let (code, _, stderr) = run(&["-", &at(&bad)]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot open: the broker refused the connection: "),
        "{stderr}"
    );
    assert!(!stderr.contains("guess"), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("serial-bridge:"))
            .count(),
        1
    );
    let (code, _, stderr) = run(&["-", &at(&dir.join("none"))]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("password-file"), "{stderr}");
    let (code, _, stderr) = run(&["-", &format!("mqtt://127.0.0.1:{},pub=c/out", broker.port)]);
    assert_eq!(code, 3, "{stderr}");
    // stdin is empty: connecting with the right password bridges, then ends.
    let (code, _, stderr) = run(&["-", &at(&good)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("connected to"), "{stderr}");
    // Nothing listening: a refused connection is exit 3 as for tcp://.
    drop(broker);
    let (code, _, stderr) = run(&["-", &at(&good)]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_mqtt_settings_are_exit_2() {
    for (spec, why) in [
        ("mqtt://h,pub=a/b,sub=a/#", "straight back"),
        ("mqtt://u:pw@h,pub=a", "never put a password"),
        ("mqtt://h,pub=a,qos=2", "QoS 2"),
        ("mqtt://h,pub=a,keepalive=0", "keepalive"),
        (
            "mqtts://h,pub=a,insecure,ca=x.pem",
            "insecure checks nothing",
        ),
    ] {
        let (code, _, stderr) = run(&["-", spec]);
        assert_eq!(code, 2, "{spec}: {stderr}");
        assert!(stderr.contains(why), "{spec}: {stderr}");
    }
}

#[test]
fn twenty_bridges_on_one_broker_each_talking_to_its_neighbour() {
    if !have_mosquitto() {
        return;
    }
    // `MQTT_SCALE_SECS=10 cargo test --release ... -- --nocapture` for the full run.
    let secs: u64 = std::env::var("MQTT_SCALE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    const N: usize = 20;
    let broker = Broker::start("");
    let ptys: Vec<Pty> = (0..N).map(|_| Pty::new()).collect();
    let bridges: Vec<Bridge> = (0..N)
        .map(|i| {
            let url = broker.url(&format!("pub=ring/{i},sub=ring/{}", (i + 1) % N));
            Bridge::start(&[&ptys[i].path, &url])
        })
        .collect();
    let cpu_before = cpu_seconds(broker.pid());
    let start = Instant::now();
    // Each bridge's port sends 100 lines a second; its neighbour gets them.
    let writers: Vec<_> = ptys
        .iter()
        .enumerate()
        .map(|(i, pty)| {
            let mut master = pty.master_clone();
            thread::spawn(move || {
                let mut sent = 0;
                while start.elapsed() < Duration::from_secs(secs) {
                    write_all(&mut master, format!("{i:02} {sent:08}\n").as_bytes());
                    sent += 1;
                    thread::sleep(Duration::from_millis(10));
                }
                sent
            })
        })
        .collect();
    let sent: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let cpu = cpu_seconds(broker.pid()) - cpu_before;
    let wall = start.elapsed().as_secs_f64();
    let rss: u64 = bridges.iter().map(|b| rss_kib(b.child.id())).sum();
    for (i, pty) in ptys.iter().enumerate() {
        // Port i hears bridge i, which subscribes to its neighbour i + 1.
        let from = (i + 1) % N;
        let expect: Vec<u8> = (0..sent[from])
            .flat_map(|k| format!("{from:02} {k:08}\n").into_bytes())
            .collect();
        let mut master = pty.master_clone();
        assert!(
            read_exactly(&mut master, expect.len(), PATIENCE) == expect,
            "port {i}"
        );
    }
    let total: usize = sent.iter().sum();
    eprintln!(
        "scale: {N} bridges, {secs} s, {total} lines, mosquitto CPU {:.1}% of a core, \
         bridges' RSS {:.1} MiB in total",
        100.0 * cpu / wall,
        rss as f64 / 1024.0
    );
}

#[test]
fn a_stop_ends_within_a_second_when_the_broker_stopped_reading() {
    if !have_mosquitto() {
        return;
    }
    for qos in ["0", "1"] {
        let broker = Broker::start("");
        let pty = Pty::new();
        let url = broker.url(&format!("pub=stuck/out,qos={qos}"));
        let bridge = Bridge::start(&[&pty.path, &url]);
        let pid = libc::pid_t::try_from(broker.pid()).unwrap();
        // SAFETY: kill has no memory effects; the pid is our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        // Lines the broker never reads, until the bridge stops taking them: the device
        // is held back (the writes time out) with the connection full.
        let mut master = pty.master_clone();
        let line = [b'x'; 999];
        let deadline = Instant::now() + PATIENCE;
        let mut stalled = Instant::now();
        while stalled.elapsed() < Duration::from_millis(300) {
            assert!(Instant::now() < deadline, "the bridge took every line");
            match std::io::Write::write(&mut master, &[&line[..], b"\n"].concat()) {
                Ok(n) if n > 0 => stalled = Instant::now(),
                _ => {}
            }
        }
        bridge.signal("INT");
        let asked = Instant::now();
        let (status, log) = bridge.wait(PATIENCE);
        let took = asked.elapsed();
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        assert_eq!(status.code(), Some(0), "{log}");
        if qos == "1" {
            // The lines the writer never got onto the connection are told apart from
            // those the broker never acknowledged.
            assert!(log.contains("never sent"), "{log}");
        }
        // The promise is a second; a quarter more for a busy machine.
        assert!(
            took < Duration::from_millis(1250),
            "qos={qos}: {took:?}\n{log}"
        );
    }
}

/// A broker played by hand on a loopback port: answers CONNECT and SUBSCRIBE, then
/// sends `then` and closes; again for every connection.
fn scripted_broker(connections: Vec<Vec<u8>>) -> (u16, thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        for then in connections {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut out = conn.try_clone().unwrap();
            // Reads one packet: its first byte and body.
            let mut packet = || {
                let mut head = [0u8; 1];
                conn.read_exact(&mut head).unwrap();
                let (mut len, mut shift) = (0usize, 0);
                loop {
                    let mut byte = [0u8; 1];
                    conn.read_exact(&mut byte).unwrap();
                    len |= usize::from(byte[0] & 0x7f) << shift;
                    shift += 7;
                    if byte[0] & 0x80 == 0 {
                        break;
                    }
                }
                let mut body = vec![0; len];
                conn.read_exact(&mut body).unwrap();
                (head[0], body)
            };
            assert_eq!(packet().0 >> 4, 1, "CONNECT");
            out.write_all(&[0x20, 2, 0, 0]).unwrap();
            let (kind, body) = packet();
            assert_eq!(kind >> 4, 8, "SUBSCRIBE");
            out.write_all(&[0x90, 3, body[0], body[1], 0]).unwrap();
            out.write_all(&then).unwrap();
            // Closed when dropped: the bridge sees the connection end.
        }
    });
    (port, handle)
}

#[test]
fn a_message_cut_off_after_pieces_went_on_is_ended_not_joined_to_the_next() {
    // A PUBLISH on "t" of 100,000 bytes, of which 40,000 arrive (the bridge reads it in
    // pieces of 16 KiB: two go on); then, after the reconnect, "next".
    let publish = |payload: &[u8], len: usize| {
        let mut out = vec![0x30];
        let mut rest = 2 + 1 + len;
        loop {
            let byte = u8::try_from(rest % 128).unwrap();
            rest /= 128;
            out.push(if rest > 0 { byte | 0x80 } else { byte });
            if rest == 0 {
                break;
            }
        }
        out.extend_from_slice(&[0, 1, b't']);
        out.extend_from_slice(payload);
        out
    };
    let (port, broker) =
        scripted_broker(vec![publish(&[b'x'; 40_000], 100_000), publish(b"next", 4)]);
    let mut pty = Pty::new();
    let url = format!("mqtt://127.0.0.1:{port},sub=t");
    let bridge = Bridge::start(&["--reconnect", "--max-line", "8", &pty.path, &url]);
    let got = read_exactly(&mut pty.master, 32_768 + 6, PATIENCE);
    let want = [&[b'x'; 32_768][..], b"\nnext\n"].concat();
    assert!(got == want, "{:?}: {}", &got[32_760..], bridge.stderr());
    broker.join().unwrap();
    bridge.signal("INT");
    let (_, log) = bridge.wait(PATIENCE);
    assert!(log.contains("1 line cut short"), "{log}");
}
