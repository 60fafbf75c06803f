//! `--coalesce US` on the real binary between two pty pairs: every byte still arrives
//! exactly, a quiet port's line goes at once, a busy one's waits at most the window,
//! and a stop or a hang-up mid-window loses nothing already read.

use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, both_ways, lines, read_exactly, run, write_all};

/// A window long enough to tell apart from the time a line takes anyway, on a loaded
/// machine running a debug build.
const WINDOW: Duration = Duration::from_secs(1);

/// Starts a bridge between two fresh ptys with `--coalesce` at `window` and `extra`.
fn setup(window: Duration, extra: &[&str]) -> (Pty, Pty, Bridge) {
    let (a, b) = (Pty::new(), Pty::new());
    let micros = window.as_micros().to_string();
    let mut args = vec!["--coalesce", micros.as_str()];
    args.extend(extra);
    args.extend([a.path.as_str(), b.path.as_str()]);
    let bridge = Bridge::start(&args);
    (a, b, bridge)
}

/// Writes `line` into `from` and returns how long it took to come out of `to`.
fn carry(from: &mut Pty, to: &mut Pty, line: &[u8]) -> Duration {
    let start = Instant::now();
    write_all(&mut from.master, line);
    assert_eq!(read_exactly(&mut to.master, line.len(), PATIENCE), line);
    start.elapsed()
}

#[test]
fn every_byte_arrives_exactly_both_ways_at_once() {
    for raw in [false, true] {
        let extra: &[&str] = if raw { &["--raw"] } else { &[] };
        let (a, b, bridge) = setup(Duration::from_micros(200), extra);
        let mut to_b = lines(b'A', 20_000);
        // Every byte value, NUL, `\r` and 0xFF among them, in lines and across them.
        let every: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
        to_b.extend_from_slice(&every);
        to_b.push(b'\n');
        let to_a = lines(b'B', 20_000);
        let (got_b, got_a) = both_ways(&a, &b, &to_b, &to_a);
        assert!(got_b == to_b, "raw {raw}: A -> B differs");
        assert!(got_a == to_a, "raw {raw}: B -> A differs");
        bridge.signal("INT");
        let (status, stderr) = bridge.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{stderr}");
        let summary = match raw {
            false => format!(
                "{} -> {}: 20000 lines, {} bytes",
                b.path,
                a.path,
                to_a.len()
            ),
            true => format!("{} -> {}: {} bytes", b.path, a.path, to_a.len()),
        };
        assert!(stderr.contains(&summary), "{stderr}");
    }
}

#[test]
fn a_quiet_port_is_read_at_once_and_a_busy_one_waits_at_most_the_window() {
    let (mut a, mut b, _bridge) = setup(WINDOW, &[]);
    // Quiet for longer than the window after whatever the start read, so the next
    // read is one that waited.
    carry(&mut a, &mut b, b"warm\n");
    thread::sleep(WINDOW * 2 + Duration::from_millis(200));
    // After a quiet spell the first line goes at once, and so does one that follows it
    // closely; that read found its data quickly, so the port now counts as busy.
    let first = carry(&mut a, &mut b, b"one\n");
    let second = carry(&mut a, &mut b, b"two\n");
    assert!(first < WINDOW / 2, "a quiet port's line waited {first:?}");
    assert!(second < WINDOW / 2, "the second line waited {second:?}");
    // The next waits for the window to end, and no longer.
    let third = carry(&mut a, &mut b, b"three\n");
    assert!(third >= WINDOW / 2, "a busy port's line came in {third:?}");
    assert!(
        third < WINDOW * 2,
        "a line waited {third:?}, past the window"
    );
    // The other direction is a reader of its own: not held by this one's window.
    let back = carry(&mut b, &mut a, b"back\n");
    assert!(back < WINDOW / 2, "the other way waited {back:?}");
}

#[test]
fn a_stop_mid_window_sends_what_was_read() {
    let (mut a, mut b, bridge) = setup(WINDOW, &[]);
    carry(&mut a, &mut b, b"one\n");
    // Found at once after "one" (or, if "one" came after a quiet start, after the
    // window): either way that read found data quickly, and the reader now waits out
    // the window holding nothing, with "half" already read.
    write_all(&mut a.master, b"two\nhalf");
    assert_eq!(read_exactly(&mut b.master, 4, PATIENCE), b"two\n");
    a.wait_drained();
    let start = Instant::now();
    bridge.signal("TERM");
    assert_eq!(read_exactly(&mut b.master, 4, PATIENCE), b"half");
    let (status, stderr) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        start.elapsed() < WINDOW * 3,
        "the stop took {:?}",
        start.elapsed()
    );
    let summary = format!("{} -> {}: 3 lines, 12 bytes", a.path, b.path);
    assert!(stderr.contains(&summary), "{stderr}");
}

#[test]
fn a_hang_up_mid_window_exits_1_naming_the_port() {
    let (mut a, mut b, bridge) = setup(WINDOW, &[]);
    carry(&mut a, &mut b, b"one\n");
    carry(&mut a, &mut b, b"two\n");
    let path = a.path.clone();
    drop(a);
    let (status, stderr) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("serial-bridge: {path}: port closed")),
        "{stderr}"
    );
}

#[test]
fn absurd_windows_and_no_serial_port_exit_2() {
    let (a, b) = (Pty::new(), Pty::new());
    for (value, says) in [
        (
            "1000001",
            "--coalesce 1000001: must be from 0 to 1000000 µs",
        ),
        ("18446744073709551615", "must be from 0 to 1000000 µs"),
        ("-1", "--coalesce"),
        ("0.5", "--coalesce"),
        ("", "--coalesce"),
    ] {
        let (code, _, err) = run(&["--coalesce", value, &a.path, &b.path]);
        assert_eq!(code, 2, "{value}: {err}");
        assert!(err.contains(says), "{value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{value}: {err}");
    }
    let (code, _, err) = run(&["--coalesce", "100", "tcp://127.0.0.1:9", "-"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "serial-bridge: --coalesce applies to the reads of a serial port, and no serial \
         port is given"
    );
}

/// Context switches of all of `pid`'s threads so far: each is a wake-up.
fn switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the bridge's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches:"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn a_port_gone_quiet_costs_no_wake_ups() {
    let (mut a, mut b, bridge) = setup(Duration::from_millis(50), &[]);
    for i in 0..50 {
        let line = format!("line {i}\n");
        write_all(&mut a.master, line.as_bytes());
    }
    read_exactly(
        &mut b.master,
        (0..50).map(|i| format!("line {i}\n").len()).sum(),
        PATIENCE,
    );
    // The window after the last read ends; from then on nothing wakes.
    thread::sleep(Duration::from_millis(300));
    let before = switches(bridge.child.id());
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        switches(bridge.child.id()),
        before,
        "an idle bridge woke up"
    );
}
