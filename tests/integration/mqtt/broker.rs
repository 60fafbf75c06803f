//! A mosquitto of the test's own, and mosquitto_sub/mosquitto_pub to talk to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{PATIENCE, have, spawn};

/// Whether mosquitto and its clients are installed (under CI they must be).
pub fn have_mosquitto() -> bool {
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
pub fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
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
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A mosquitto of our own, on a loopback port, in a folder of its own.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Broker {
    /// Starts a broker with `extra` config lines.
    pub fn start(extra: &str) -> Broker {
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
    pub fn run(&mut self) {
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
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: kill has no memory effects; the pid is our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Waits until the broker logs `text`.
    pub fn wait_for_log(&self, text: &str) {
        wait_until(&format!("{text:?} in the broker log"), || {
            self.log().contains(text)
        });
    }

    /// `mqtt://127.0.0.1:PORT,` followed by `settings`.
    pub fn url(&self, settings: &str) -> String {
        format!("mqtt://127.0.0.1:{},{settings}", self.port)
    }

    /// mosquitto_sub on `filter`, printing `topic hexpayload` per message; returns once
    /// the broker has the subscription.
    pub fn sub(&self, filter: &str, qos: u8) -> Sub {
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
    pub fn publish(&self, topic: &str, payload: &[u8], qos: u8) {
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
    pub fn wait_retained(&self, topic: &str, expected: &str) {
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
pub struct Sub {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Sub {
    /// The messages so far: topic and payload.
    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
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
    pub fn wait(&self, count: usize) -> Vec<(String, Vec<u8>)> {
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

/// CPU seconds a process has used (utime + stime), from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
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
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
