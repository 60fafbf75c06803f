//! The real binary between two pty pairs: data, framing, signals and hang-ups.

use std::thread;
use std::time::Duration;

use crate::util::{Bridge, PATIENCE, Pty, both_ways, lines, read_exactly, read_for, write_all};

/// Starts a bridge between two fresh ptys with `extra` options.
fn setup(extra: &[&str]) -> (Pty, Pty, Bridge) {
    let (a, b) = (Pty::new(), Pty::new());
    let mut args: Vec<&str> = extra.to_vec();
    args.extend([a.path.as_str(), b.path.as_str()]);
    let bridge = Bridge::start(&args);
    (a, b, bridge)
}

/// Sends `data` into A and expects exactly `expect` out of B.
fn a_to_b(a: &mut Pty, b: &mut Pty, data: &[u8], expect: &[u8]) {
    write_all(&mut a.master, data);
    let got = read_exactly(&mut b.master, expect.len(), PATIENCE);
    assert_eq!(got, expect);
}

#[test]
fn both_directions_at_once_100k_lines_each_way() {
    let (a, b, bridge) = setup(&[]);
    let (to_b, to_a) = (lines(b'A', 100_000), lines(b'B', 100_000));
    let (got_b, got_a) = both_ways(&a, &b, &to_b, &to_a);
    assert!(got_b == to_b, "A -> B differs");
    assert!(got_a == to_a, "B -> A differs");
    bridge.signal("INT");
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let summary = format!(
        "{} -> {}: 100000 lines, {} bytes",
        a.path,
        b.path,
        to_b.len()
    );
    assert!(stderr.contains(&summary), "{stderr}");
}

#[test]
fn awkward_lines_arrive_byte_exact() {
    let (mut a, mut b, _bridge) = setup(&["--max-line", "300"]);
    let every: Vec<u8> = (0..=255u8).filter(|&x| x != b'\n').chain([b'\n']).collect();
    a_to_b(&mut a, &mut b, &every, &every);
    a_to_b(&mut a, &mut b, b"\n\n\n", b"\n\n\n");
    a_to_b(&mut a, &mut b, b"crlf\r\n", b"crlf\r\n");
    // A line one byte per write, checked only once whole.
    for &byte in b"slowly\n".iter() {
        write_all(&mut a.master, &[byte]);
        a.wait_drained();
    }
    assert_eq!(read_exactly(&mut b.master, 7, PATIENCE), b"slowly\n");
    // Nothing but complete lines crosses.
    write_all(&mut b.master, b"no newline yet");
    assert!(read_for(&mut a.master, Duration::from_millis(300)).is_empty());
    write_all(&mut b.master, b"!\n");
    assert_eq!(
        read_exactly(&mut a.master, 16, PATIENCE),
        b"no newline yet!\n"
    );
}

#[test]
fn multi_byte_delimiter_split_across_writes() {
    let (mut a, mut b, _bridge) = setup(&["--delimiter", "\\r\\n"]);
    write_all(&mut a.master, b"one\r");
    a.wait_drained();
    write_all(&mut a.master, b"\n");
    assert_eq!(read_exactly(&mut b.master, 5, PATIENCE), b"one\r\n");
    // A lone \n is an ordinary byte.
    a_to_b(&mut a, &mut b, b"a\nb\r\n", b"a\nb\r\n");
}

#[test]
fn max_line_and_one_more() {
    let (mut a, mut b, _bridge) = setup(&["--max-line", "16"]);
    let exact = [&[b'x'; 16][..], b"\n"].concat();
    a_to_b(&mut a, &mut b, &exact, &exact);
    let longer = [&[b'y'; 17][..], b"\n"].concat();
    a_to_b(&mut a, &mut b, &longer, &longer);
}

#[test]
fn a_megabyte_without_delimiter_arrives_in_max_line_pieces() {
    let (mut a, mut b, bridge) = setup(&["-v", "--max-line", "4096"]);
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8 | 0x80).collect();
    let mut writer = a.master_clone();
    let sent = data.clone();
    let w = thread::spawn(move || write_all(&mut writer, &sent));
    // All but the last piece cross at once; the last waits to see what follows it.
    let got = read_exactly(&mut b.master, data.len() - 4096, PATIENCE);
    w.join().unwrap();
    write_all(&mut a.master, b"\n");
    let tail = read_exactly(&mut b.master, 4097, PATIENCE);
    assert_eq!([got, tail].concat(), [&data[..], b"\n"].concat());
    bridge.signal("TERM");
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert_eq!(stderr.matches(" 4096 bytes \"").count(), 255, "{stderr}");
    assert_eq!(stderr.matches("longer than --max-line").count(), 1);
    // One line, cut 255 times, is one over-long line.
    assert!(
        stderr.contains("(1 over-long line forwarded in pieces)"),
        "{stderr}"
    );
    drop(a);
}

#[test]
fn raw_carries_any_bytes_unchanged() {
    let (mut a, mut b, _bridge) = setup(&["--raw"]);
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    a_to_b(&mut a, &mut b, &data, &data);
    write_all(&mut b.master, b"no newline \n\n\x00");
    assert_eq!(
        read_exactly(&mut a.master, 14, PATIENCE),
        b"no newline \n\n\x00"
    );
}

#[test]
fn flush_after_forwards_a_prompt() {
    let (mut a, mut b, _bridge) = setup(&["--flush-after", "100"]);
    a_to_b(&mut a, &mut b, b"Enter value: ", b"Enter value: ");
    a_to_b(&mut a, &mut b, b"42\n", b"42\n");
}

#[test]
fn sigint_forwards_the_partial_line_and_prints_a_summary() {
    let (mut a, mut b, bridge) = setup(&[]);
    // One write, so the bridge reads the partial line with the whole one.
    write_all(&mut a.master, b"whole\npartial");
    assert_eq!(read_exactly(&mut b.master, 6, PATIENCE), b"whole\n");
    a.wait_drained();
    bridge.signal("INT");
    assert_eq!(
        read_exactly(&mut b.master, 7, Duration::from_secs(3)),
        b"partial"
    );
    let (status, stderr) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("{} -> {}: 2 lines, 13 bytes", a.path, b.path)));
    assert!(stderr.contains(&format!("{} -> {}: 0 lines, 0 bytes", b.path, a.path)));
}

#[test]
fn sighup_and_sigterm_stop_cleanly() {
    for signal in ["HUP", "TERM"] {
        let (_a, _b, bridge) = setup(&[]);
        bridge.signal(signal);
        let (status, stderr) = bridge.wait(Duration::from_secs(3));
        assert_eq!(status.code(), Some(0), "{signal}: {stderr}");
    }
}

#[test]
fn hang_up_exits_1_naming_the_port() {
    let (a, b, bridge) = setup(&[]);
    let path = b.path.clone();
    drop(b);
    let (status, stderr) = bridge.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("serial-bridge: {path}: port closed")),
        "{stderr}"
    );
    drop(a);
}

#[test]
fn a_slow_side_does_not_stall_the_other_direction() {
    let (a, mut b, _bridge) = setup(&[]);
    // Flood A -> B while nobody reads B: B's pty fills and its writer stalls.
    let mut flood = a.master_clone();
    let data = lines(b'F', 50_000);
    let w = thread::spawn(move || {
        let _ = std::panic::catch_unwind(move || write_all(&mut flood, &data));
    });
    thread::sleep(Duration::from_millis(300));
    let mut ra = a.master_clone();
    for i in 0..20 {
        let line = format!("reply {i}\n");
        write_all(&mut b.master, line.as_bytes());
        // B -> A keeps flowing, promptly, while A -> B is blocked.
        assert_eq!(
            read_exactly(&mut ra, line.len(), Duration::from_secs(2)),
            line.as_bytes()
        );
    }
    drop(w);
}

#[test]
fn settle_holds_lines_for_a_port_after_it_opens() {
    let (mut a, mut b) = (Pty::new(), Pty::new());
    let b_spec = format!("{},settle=1500", b.path);
    let bridge = Bridge::start(&[&a.path, &b_spec]);
    write_all(&mut a.master, b"early\n");
    // Held while B settles (1.5 s from its opening), then sent.
    assert!(read_for(&mut b.master, Duration::from_millis(300)).is_empty());
    assert_eq!(read_exactly(&mut b.master, 6, PATIENCE), b"early\n");
    // The other way is not held.
    write_all(&mut b.master, b"reply\n");
    assert_eq!(read_exactly(&mut a.master, 6, PATIENCE), b"reply\n");
    drop(bridge);
}

#[test]
fn hupcl_setting_is_applied() {
    use std::os::fd::AsRawFd;
    let hupcl = |pty: &Pty| {
        // SAFETY: termios is plain data, filled by tcgetattr from our own descriptor.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::tcgetattr(pty.slave.as_raw_fd(), &mut termios) },
            0
        );
        termios.c_cflag & libc::HUPCL != 0
    };
    let (a, b) = (Pty::new(), Pty::new());
    let (a_spec, b_spec) = (
        format!("{},hupcl=off", a.path),
        format!("{},hupcl=on", b.path),
    );
    let _bridge = Bridge::start(&[&a_spec, &b_spec]);
    assert!(!hupcl(&a));
    assert!(hupcl(&b));
}

#[test]
fn ten_megabytes_without_a_delimiter_keep_memory_small() {
    let (a, mut b, bridge) = setup(&[]);
    let data = vec![b'x'; 10 << 20];
    let mut writer = a.master_clone();
    let sent = data.clone();
    let w = thread::spawn(move || write_all(&mut writer, &sent));
    // All but the last max-line piece crosses; that one waits for what follows.
    let got = read_exactly(&mut b.master, data.len() - 4096, PATIENCE);
    w.join().unwrap();
    assert!(got.iter().all(|&x| x == b'x'));
    let status = std::fs::read_to_string(format!("/proc/{}/status", bridge.child.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kb < 10 * 1024, "peak RSS {peak_kb} kB");
    eprintln!("peak RSS after 10 MB without a delimiter: {peak_kb} kB");
}

#[test]
fn a_stop_while_a_port_settles_sends_the_held_lines() {
    let (mut a, mut b) = (Pty::new(), Pty::new());
    let b_spec = format!("{},settle=60000", b.path);
    let bridge = Bridge::start(&["-v", &a.path, &b_spec]);
    write_all(&mut a.master, b"held\n");
    // Logged once read and handed on (a read that returns after the stop is not).
    bridge.wait_for_log("5 bytes \"held\\n\"");
    bridge.signal("INT");
    let (status, log) = bridge.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(read_exactly(&mut b.master, 5, PATIENCE), b"held\n");
    assert!(!log.contains("which is down"), "{log}");
    assert!(log.contains(": 1 line, 5 bytes"), "{log}");
}

#[test]
fn pty_links_are_only_made_where_nothing_lives_and_only_removed_if_still_ours() {
    let dir = std::env::temp_dir().join(format!("sb-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("port");
    let other = Pty::new();
    // A link to something that exists is not taken over.
    std::os::unix::fs::symlink(&other.path, &link).unwrap();
    let (code, _, err) = crate::util::run(&[&format!("pty:{}", link.display()), "pty"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("which exists"), "{err}");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new(&other.path)
    );
    // A dangling one is replaced; a second bridge on the same link is refused, and the
    // first one's link stays until it ends.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(dir.join("gone"), &link).unwrap();
    let spec = format!("pty:{}", link.display());
    let first = Bridge::start(&[&spec, &other.path]);
    let (code, _, err) = crate::util::run(&[&spec, "pty"]);
    assert_eq!(code, 3, "{err}");
    assert!(std::fs::read_link(&link).unwrap().starts_with("/dev/pts/"));
    // A file put in its place meanwhile is left alone at exit.
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"not ours").unwrap();
    first.signal("INT");
    let (status, log) = first.wait(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(std::fs::read(&link).unwrap(), b"not ours");
    // A regular file at the link (`echo hello > LINK` run too early) is refused, with
    // the way out; a directory is not to be removed.
    let (code, _, err) = crate::util::run(&[&spec, "pty"]);
    assert_eq!(code, 3, "{err}");
    let shown = link.display();
    assert!(
        err.trim_end().ends_with(&format!(
            "{shown} is a regular file, not a link (something wrote to it before a bridge \
             made the link?); remove it (rm {shown}) if nothing needs it, or pick another LINK"
        )),
        "{err}"
    );
    std::fs::remove_file(&link).unwrap();
    std::fs::create_dir(&link).unwrap();
    let (code, _, err) = crate::util::run(&[&spec, "pty"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("exists and is not a symlink; pick another LINK"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stop_on_a_terminal_starts_the_log_on_a_line_of_its_own() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    // The bridge's stderr is a terminal, where Ctrl-C leaves `^C` at the end of the line.
    let mut term = Pty::new();
    let ports = Pty::new();
    // SAFETY: dup gives a new descriptor of our own for the child's stderr.
    let stderr = unsafe { OwnedFd::from_raw_fd(libc::dup(term.slave.as_raw_fd())) };
    let mut child = crate::util::spawn(
        Command::new(env!("CARGO_BIN_EXE_serial-bridge"))
            .args([ports.path.as_str(), "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr)),
    );
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !String::from_utf8_lossy(&seen).contains("bridging") {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        seen.extend(read_for(&mut term.master, Duration::from_millis(50)));
    }
    // Its stdin stays open (wait() would close it first, an end of input).
    let _stdin = child.stdin.take();
    // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    seen.extend(read_for(&mut term.master, Duration::from_millis(300)));
    let log = String::from_utf8_lossy(&seen).replace('\r', "");
    let at = log
        .find("stopping")
        .unwrap_or_else(|| panic!("no stopping line: {log:?}"));
    let before = &log[..at];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    assert!(
        before[..line_start].ends_with("\n\n"),
        "no empty line before the stop: {log:?}"
    );
}
