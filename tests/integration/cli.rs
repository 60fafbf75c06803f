//! The command line: help, version, list, and each error's message and exit code.

use crate::util::{Pty, run};

#[test]
fn help_version_and_list_exit_0() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("serial-bridge /dev/ttyACM0 /dev/ttyACM1"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("serial-bridge "));
    let (code, _, _) = run(&["--list"]);
    assert_eq!(code, 0);
}

#[test]
fn missing_port_exits_3_with_a_hint() {
    let other = Pty::new();
    let (code, _, err) = run(&["/dev/does-not-exist", &other.path]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with("serial-bridge: /dev/does-not-exist: cannot open: no such port"),
        "{err}"
    );
    assert!(err.contains("--list"));
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_setting_exits_2_quoting_it() {
    let (code, _, err) = run(&["/dev/ttyACM0,baud=fast", "/dev/ttyACM1"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("serial-bridge: /dev/ttyACM0: bad setting 'baud=fast'"),
        "{err}"
    );
}

#[test]
fn same_port_twice_exits_2() {
    let pty = Pty::new();
    let (code, _, err) = run(&[&pty.path, &format!("{},baud=115200", pty.path)]);
    assert_eq!(code, 2);
    assert!(err.contains("given as both ports"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["/dev/a"][..],
        &["--bogus", "/a", "/b"],
        &["--max-line", "x", "/a", "/b"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("serial-bridge: "), "{err}");
    }
}

#[test]
fn not_a_serial_port_exits_3() {
    let other = Pty::new();
    let (code, _, err) = run(&["/etc/hostname", &other.path]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("/etc/hostname: cannot open"), "{err}");
}

#[test]
fn busy_port_exits_3() {
    let (busy, other) = (Pty::new(), Pty::new());
    // serialport takes an exclusive lock, as this bridge does.
    let _holder = serialport::new(&busy.path, 9600)
        .open()
        .expect("hold the port");
    let (code, _, err) = run(&[&busy.path, &other.path]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("port is busy"), "{err}");
}

#[test]
fn permission_denied_exits_3_with_a_hint() {
    // Needs root to drop to an unprivileged user who may not open root's ptys.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = std::path::Path::new("/usr/bin/setpriv").exists();
    if !root || !setpriv {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let (a, b) = (Pty::new(), Pty::new());
    let (code, _, err) = run(&[
        "--as-nobody", // consumed by util::run
        &a.path,
        &b.path,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("{}: cannot open: permission denied", a.path)),
        "{err}"
    );
    assert!(err.contains("dialout"), "{err}");
}
