//! `mqtt://` against a real broker: each test starts its own mosquitto on a free
//! loopback port with a temporary config, and stops it after. mosquitto_sub and
//! mosquitto_pub stand in for the other machines.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, have, lines, read_exactly, run, spawn, write_all};

/// Whether mosquitto and its clients are installed (under CI they must be).
fn have_mosquitto() -> bool {
    have(
        "sh",
        &[
            "-c",
            "command -v mosquitto && command -v mosquitto_sub && command -v mosquitto_pub \
             && command -v mosquitto_passwd",
        ],
    )
}

/// Collects a child's output on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&sink);
    thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            out.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    sink
}

/// Polls `done` until it holds, failing the test at the deadline with `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A mosquitto of our own, on a loopback port, in a folder of its own.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Broker {
    /// Starts a broker with `extra` config lines.
    fn start(extra: &str) -> Broker {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sb-mqtt-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `user root`: as root, mosquitto would otherwise switch to its own user, which
        // cannot write the persistence folder made here. Elsewhere it has no effect.
        let config = format!(
            "listener {port} 127.0.0.1\nuser root\nlog_dest stderr\nlog_type error\n\
             log_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n\
             {extra}\n"
        );
        let extra = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        std::fs::write(dir.join("mosquitto.conf"), config + extra).unwrap();
        let mut broker = Broker {
            child: None,
            port,
            dir,
            log: Arc::default(),
        };
        broker.run();
        broker
    }

    /// Starts (or starts again) the broker process and waits until it listens.
    fn run(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let mut child = spawn(
            Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        // stderr, which C leaves unbuffered: each line arrives as it is logged.
        self.log = collect(child.stderr.take().unwrap());
        let _ = collect(child.stdout.take().unwrap());
        self.child = Some(child);
        let port = self.port;
        wait_until("mosquitto to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops the broker with SIGTERM (it saves its persistence file) and waits.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: kill has no memory effects; the pid is our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Waits until the broker logs `text`.
    fn wait_for_log(&self, text: &str) {
        wait_until(&format!("{text:?} in the broker log"), || {
            self.log().contains(text)
        });
    }

    /// `mqtt://127.0.0.1:PORT,` followed by `settings`.
    fn url(&self, settings: &str) -> String {
        format!("mqtt://127.0.0.1:{},{settings}", self.port)
    }

    /// mosquitto_sub on `filter`, printing `topic hexpayload` per message; returns once
    /// the broker has the subscription.
    fn sub(&self, filter: &str, qos: u8) -> Sub {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let id = format!("testsub{}", COUNT.fetch_add(1, Ordering::Relaxed));
        let mut child = spawn(
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-i", &id])
                .args(["-t", filter, "-q", &qos.to_string(), "-F", "%t %x"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let out = collect(child.stdout.take().unwrap());
        // Made first, so a failed wait still kills it.
        let sub = Sub { child, out };
        self.wait_for_log(&format!("{id} {qos} {filter}"));
        sub
    }

    /// mosquitto_pub of `payload` (any bytes) on `topic`.
    fn publish(&self, topic: &str, payload: &[u8], qos: u8) {
        let mut child = spawn(
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-t", topic, "-q", &qos.to_string()])
                .args(if payload.is_empty() { ["-n"] } else { ["-s"] })
                .stdin(Stdio::piped()),
        );
        child.stdin.take().unwrap().write_all(payload).unwrap();
        assert!(child.wait().unwrap().success(), "mosquitto_pub");
    }

    /// The retained message on `topic` once it is `expected`.
    fn wait_retained(&self, topic: &str, expected: &str) {
        let port = self.port.to_string();
        let mut last = String::new();
        wait_until(&format!("{expected:?} retained on {topic}"), || {
            let out = Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port, "-t", topic])
                .args(["-C", "1", "-W", "2", "--retained-only"])
                .output()
                .unwrap();
            last = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
            last == expected
        });
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running mosquitto_sub.
struct Sub {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Sub {
    /// The messages so far: topic and payload.
    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        let out = self.out.lock().unwrap().clone();
        let text = String::from_utf8(out).expect("topics and hex are text");
        text.lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (topic, hex) = line.split_once(' ').unwrap_or((line, ""));
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (topic.to_string(), bytes)
            })
            .collect()
    }

    /// Waits for `count` messages and returns them.
    fn wait(&self, count: usize) -> Vec<(String, Vec<u8>)> {
        wait_until(&format!("{count} messages at mosquitto_sub"), || {
            self.messages().len() >= count
        });
        self.messages()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    (number(" dropped"), number(" reconnects"))
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
        ("mqtts://h,pub=a", "TLS is not supported"),
    ] {
        let (code, _, stderr) = run(&["-", spec]);
        assert_eq!(code, 2, "{spec}: {stderr}");
        assert!(stderr.contains(why), "{spec}: {stderr}");
    }
}

/// CPU seconds a process has used (utime + stime), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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
