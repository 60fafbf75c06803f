//! `--reconnect`: ports that go away and come back, reached through symlinks the way
//! `/dev/serial/by-id/...` paths are, and a TCP server that restarts.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::util::{Bridge, PATIENCE, Pty, read_exactly, write_all};

/// A "device" behind a fixed symlink: unplugging closes its pty and removes the
/// link; plugging in makes a new pty (a new /dev/pts/N) behind the same link.
struct Plug {
    link: PathBuf,
    pty: Option<Pty>,
}

impl Plug {
    fn new(name: &str) -> Plug {
        let dir = std::env::temp_dir().join(format!("sb-reconnect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut plug = Plug {
            link: dir.join(format!("{name}-{:?}", std::thread::current().id())),
            pty: None,
        };
        plug.plug();
        plug
    }

    fn absent(name: &str) -> Plug {
        let mut plug = Plug::new(name);
        plug.unplug();
        plug
    }

    fn path(&self) -> &str {
        self.link.to_str().unwrap()
    }

    fn plug(&mut self) {
        let pty = Pty::new();
        let _ = std::fs::remove_file(&self.link);
        std::os::unix::fs::symlink(&pty.path, &self.link).unwrap();
        self.pty = Some(pty);
    }

    fn unplug(&mut self) {
        self.pty = None;
        let _ = std::fs::remove_file(&self.link);
    }

    fn pty(&mut self) -> &mut Pty {
        self.pty.as_mut().expect("plugged in")
    }

    /// Sends `data` into this device and expects `expect` out of `other`.
    fn to(&mut self, other: &mut Plug, data: &[u8], expect: &[u8]) {
        write_all(&mut self.pty().master, data);
        assert_eq!(
            read_exactly(&mut other.pty().master, expect.len(), PATIENCE),
            expect
        );
    }
}

impl Drop for Plug {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

#[test]
fn unplug_and_replug_resumes_both_ways_with_queued_lines() {
    let (mut a, mut b) = (Plug::new("a"), Plug::new("b"));
    let bridge = Bridge::start(&["--reconnect", a.path(), b.path()]);
    a.to(&mut b, b"before\n", b"before\n");
    b.unplug();
    bridge.wait_for_log(&format!(
        "{}: port closed (hang-up); reconnecting",
        b.path()
    ));
    // A keeps being read; its lines for B wait.
    write_all(&mut a.pty().master, b"while\ndown\n");
    a.pty().wait_drained();
    b.plug();
    bridge.wait_for_log(&format!("{}: back after", b.path()));
    assert_eq!(
        read_exactly(&mut b.pty().master, 11, PATIENCE),
        b"while\ndown\n"
    );
    b.to(&mut a, b"from new b\n", b"from new b\n");
    a.to(&mut b, b"after\n", b"after\n");
    bridge.signal("INT");
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("4 lines, 24 bytes, 0 dropped, 1 reconnect"),
        "{stderr}"
    );
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    let (mut a, mut b) = (Plug::new("a"), Plug::new("b"));
    let args = [
        "--reconnect",
        "--queue",
        "2",
        "--stats",
        "1",
        a.path(),
        b.path(),
    ];
    let bridge = Bridge::start(&args);
    b.unplug();
    bridge.wait_for_log("reconnecting");
    write_all(&mut a.pty().master, b"1\n2\n3\n4\n5\n");
    bridge.wait_for_log("0 lines, 0 bytes, 3 dropped");
    assert!(
        bridge
            .stderr()
            .contains("dropping the oldest lines (--queue 2)")
    );
    b.plug();
    bridge.wait_for_log("back after");
    assert_eq!(read_exactly(&mut b.pty().master, 4, PATIENCE), b"4\n5\n");
    bridge.wait_for_log(&format!("3 lines dropped while {} was down", b.path()));
}

#[test]
fn a_port_missing_at_start_is_waited_for() {
    let (mut a, mut b) = (Plug::new("a"), Plug::absent("b"));
    let bridge = Bridge::start(&["--reconnect", a.path(), b.path()]);
    bridge.wait_for_log("waiting for it (--reconnect)");
    b.plug();
    bridge.wait_for_log("back after");
    a.to(&mut b, b"hello\n", b"hello\n");
    b.to(&mut a, b"hi\n", b"hi\n");
}

#[test]
fn both_ports_lost_at_once_come_back() {
    let (mut a, mut b) = (Plug::new("a"), Plug::new("b"));
    let bridge = Bridge::start(&["--reconnect", a.path(), b.path()]);
    a.unplug();
    b.unplug();
    bridge.wait_for_log(&format!(
        "{}: port closed (hang-up); reconnecting",
        a.path()
    ));
    bridge.wait_for_log(&format!(
        "{}: port closed (hang-up); reconnecting",
        b.path()
    ));
    a.plug();
    b.plug();
    bridge.wait_for_log(&format!("{}: back after", a.path()));
    bridge.wait_for_log(&format!("{}: back after", b.path()));
    a.to(&mut b, b"again\n", b"again\n");
    b.to(&mut a, b"and back\n", b"and back\n");
}

#[test]
fn a_restarted_tcp_server_is_reconnected() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut device = Pty::new();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let bridge = Bridge::start(&["--reconnect", &device.path, &tcp]);
    let (conn, _) = server.accept().unwrap();
    drop(conn);
    drop(server);
    bridge.wait_for_log(&format!("{tcp}: port closed (hang-up); reconnecting"));
    let server = TcpListener::bind(("127.0.0.1", port)).expect("same port again");
    let (mut conn, _) = server.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    bridge.wait_for_log(&format!("{tcp}: back after"));
    write_all(&mut device.master, b"to server\n");
    assert_eq!(read_exactly(&mut conn, 10, PATIENCE), b"to server\n");
    std::io::Write::write_all(&mut conn, b"to device\n").unwrap();
    assert_eq!(
        read_exactly(&mut device.master, 10, PATIENCE),
        b"to device\n"
    );
}

#[test]
fn unplug_during_a_write_without_reconnect_exits_1() {
    let (a, mut b) = (Plug::new("a"), Plug::new("b"));
    let bridge = Bridge::start(&[a.path(), b.path()]);
    // Nobody reads B, so the bridge is blocked writing to it when it goes.
    let mut flood = a.pty.as_ref().unwrap().master_clone();
    let data = crate::util::lines(b'F', 20_000);
    let writer = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(move || write_all(&mut flood, &data));
    });
    bridge.wait_for_log("not accepting data");
    b.unplug();
    let (status, stderr) = bridge.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("serial-bridge: {}: port closed", b.path())),
        "{stderr}"
    );
    drop(writer);
}

#[test]
fn unplug_during_a_write_with_reconnect_counts_the_loss_and_goes_on() {
    let (mut a, mut b) = (Plug::new("a"), Plug::new("b"));
    let bridge = Bridge::start(&[
        "--reconnect",
        "--queue",
        "0",
        "--stats",
        "1",
        a.path(),
        b.path(),
    ]);
    let mut flood = a.pty().master_clone();
    let data = crate::util::lines(b'F', 20_000);
    let writer = std::thread::spawn(move || write_all(&mut flood, &data));
    // Once B is full the writer is stuck mid-batch; then B goes.
    bridge.wait_for_log("not accepting data");
    b.unplug();
    bridge.wait_for_log("reconnecting");
    writer.join().unwrap();
    b.plug();
    bridge.wait_for_log("back after");
    a.to(&mut b, b"after the loss\n", b"after the loss\n");
    bridge.signal("INT");
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let summary = stderr
        .lines()
        .rev()
        .find(|l| l.contains(&format!("{} -> {}", a.path(), b.path())))
        .expect("summary");
    let dropped: u64 = summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" dropped"))
        .and_then(|n| n.parse().ok())
        .expect("a dropped count");
    assert!(dropped > 0, "{summary}");
}
