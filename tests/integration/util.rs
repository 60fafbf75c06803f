//! Test helpers: pty pairs, the binary under test, and I/O with deadlines.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// How long any one step may take before a test fails. Generous: a loaded 2-core
/// machine running a debug build is slow, and a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A pseudo-terminal pair standing in for a serial port. The bridge opens `path` (the
/// slave); the test plays the device on `master`. Both halves stay open for the whole
/// test, so the slave never sees a hang-up it did not ask for.
pub struct Pty {
    pub master: TTYPort,
    pub slave: TTYPort,
    pub path: String,
}

/// Held while creating file descriptors that could leak into a child, and while
/// starting a child. `TTYPort::pair` opens both halves without close-on-exec, and
/// tests run in parallel: a bridge started by another test would otherwise inherit
/// this pty's master and keep it open after this test closes it.
static FD_GATE: Mutex<()> = Mutex::new(());

fn gate() -> std::sync::MutexGuard<'static, ()> {
    FD_GATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn close_on_exec(port: &TTYPort) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a file descriptor this process owns; no memory is involved.
    let ok = unsafe { libc::fcntl(port.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == 0;
    assert!(ok, "set FD_CLOEXEC");
}

impl Pty {
    pub fn new() -> Pty {
        let (mut master, slave) = {
            let _gate = gate();
            let (master, slave) = TTYPort::pair().expect("create a pty pair");
            close_on_exec(&master);
            close_on_exec(&slave);
            (master, slave)
        };
        master
            .set_timeout(Duration::from_millis(50))
            .expect("set master timeout");
        let path = slave.name().expect("slave has a path");
        Pty {
            master,
            slave,
            path,
        }
    }

    /// A second handle on the master, for a writer thread.
    pub fn master_clone(&self) -> TTYPort {
        let mut clone = self.master.try_clone_native().expect("clone master");
        clone
            .set_timeout(Duration::from_millis(50))
            .expect("set timeout");
        clone
    }

    /// Waits until the bridge has read everything written to the master.
    pub fn wait_drained(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.slave.bytes_to_read().expect("TIOCINQ") > 0 {
            assert!(Instant::now() < deadline, "bridge never read {}", self.path);
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A timeout: ptys report `TimedOut`, sockets `WouldBlock`.
fn waiting(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Writes all of `data`, waiting while the other side is full.
pub fn write_all(port: &mut dyn Write, mut data: &[u8]) {
    let deadline = Instant::now() + PATIENCE;
    while !data.is_empty() {
        match port.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if waiting(&e) => {}
            Err(e) => panic!("write: {e}"),
        }
        assert!(Instant::now() < deadline, "write stalled");
    }
}

/// Reads exactly `n` bytes, or fails the test at the deadline showing what came.
pub fn read_exactly(port: &mut dyn Read, n: usize, patience: Duration) -> Vec<u8> {
    let deadline = Instant::now() + patience;
    let mut out = vec![0; n];
    let mut got = 0;
    while got < n {
        match port.read(&mut out[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} bytes"),
            Ok(k) => got += k,
            Err(e) if waiting(&e) => {}
            Err(e) => panic!("read after {got} of {n} bytes: {e}"),
        }
        if got < n && Instant::now() >= deadline {
            let seen = String::from_utf8_lossy(&out[..got.min(200)]).into_owned();
            panic!("only {got} of {n} bytes within {patience:?}; start: {seen:?}");
        }
    }
    out
}

/// Reads whatever arrives within `wait`, expecting nothing.
pub fn read_for(port: &mut dyn Read, wait: Duration) -> Vec<u8> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    while Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(e) if waiting(&e) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    out
}

/// Writes `to_b` into `a` and `to_a` into `b` at once; returns what came out of `b`
/// and of `a`, as many bytes as were sent each way.
pub fn both_ways(a: &Pty, b: &Pty, to_b: &[u8], to_a: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let writers = [
        (a.master_clone(), to_b.to_vec()),
        (b.master_clone(), to_a.to_vec()),
    ]
    .map(|(mut port, data)| thread::spawn(move || write_all(&mut port, &data)));
    let (mut ra, mut rb) = (a.master_clone(), b.master_clone());
    let n = to_a.len();
    let reader = thread::spawn(move || read_exactly(&mut ra, n, PATIENCE));
    let got_b = read_exactly(&mut rb, to_b.len(), PATIENCE);
    let got_a = reader.join().expect("the reader of A");
    for w in writers {
        w.join().expect("a writer");
    }
    (got_b, got_a)
}

/// The serial-bridge binary, running, with its stderr collected.
pub struct Bridge {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Bridge {
    /// Starts the binary and waits until it is bridging.
    pub fn start(args: &[&str]) -> Bridge {
        let bridge = Bridge::spawn(args);
        bridge.wait_for_log("bridging");
        bridge
    }

    /// Starts the binary without waiting for anything.
    pub fn spawn(args: &[&str]) -> Bridge {
        let mut child = {
            let _gate = gate();
            Command::new(env!("CARGO_BIN_EXE_serial-bridge"))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start serial-bridge")
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Bridge { child, stderr }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`; fails if the bridge exits first.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in stderr: {}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The port its one loopback listener took (`...listen://127.0.0.1:0`), from its log.
    pub fn listening_port(&self) -> u16 {
        self.wait_for_log("listening on 127.0.0.1:");
        self.stderr()
            .split("listening on 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .expect("a port in the log")
    }

    /// Sends a signal by name (INT, TERM, HUP).
    pub fn signal(&self, name: &str) {
        let signal = match name {
            "INT" => libc::SIGINT,
            "TERM" => libc::SIGTERM,
            "HUP" => libc::SIGHUP,
            _ => panic!("unknown signal {name}"),
        };
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill -{name}");
    }

    /// Waits for the bridge to exit within `patience`; returns its status and stderr.
    pub fn wait(mut self, patience: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the stderr thread take the last bytes.
                let drained = Instant::now() + Duration::from_secs(5);
                while Arc::strong_count(&self.stderr) > 1 && Instant::now() < drained {
                    thread::sleep(Duration::from_millis(5));
                }
                return (status, self.stderr());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("bridge still running after {patience:?}: {}", self.stderr());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts any command while no pty is being created, so it inherits none.
pub fn spawn(command: &mut Command) -> Child {
    let _gate = gate();
    command.spawn().expect("start a peer")
}

/// Runs the binary to completion with `args`; returns exit code, stdout and stderr.
/// A first argument `--as-nobody` runs it as user and group 65534 (needs root).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let bin = env!("CARGO_BIN_EXE_serial-bridge");
    let mut command = match args.first() {
        Some(&"--as-nobody") => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c.args(&args[1..]);
            c
        }
        _ => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    let child = {
        let _gate = gate();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run serial-bridge")
    };
    let output = child.wait_with_output().expect("wait for serial-bridge");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Deterministic test lines: `count` lines tagged with `tag`, each with bytes that
/// are easy to get wrong (NUL, CR, 0xFF, invalid UTF-8) and never `\n`.
pub fn lines(tag: u8, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut state: u32 = 0x9e37_79b9 ^ u32::from(tag);
    for i in 0..count {
        out.push(tag);
        out.extend_from_slice(format!("{i:06}").as_bytes());
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (state % 40) as usize;
        for j in 0..len {
            let b = (state.rotate_left(j as u32) as u8).wrapping_add(j as u8);
            out.push(if b == b'\n' { 0xff } else { b });
        }
        out.push(b'\n');
    }
    out
}

/// Whether an optional peer (socat, a Python module) is installed. Under CI (`CI`
/// set) it must be: .ci/run installs every one. Elsewhere a missing one skips the test.
pub fn have(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} {args:?} missing under CI"
        );
        eprintln!("skipped: {program} {args:?} not available");
    }
    ok
}

/// Runs a scenario of a peer script in tests/integration (`ws_peer.py`, `hub_peer.py`):
/// it plays the peers and devices itself, checks every byte and says what went wrong.
pub fn scenario(script: &str, name: &str) {
    let path = format!("{}/tests/integration/{script}", env!("CARGO_MANIFEST_DIR"));
    let child = spawn(
        Command::new("python3")
            .args([&path, name, env!("CARGO_BIN_EXE_serial-bridge")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let output = child.wait_with_output().expect("wait for the peer script");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name}: {out}{err}");
}
