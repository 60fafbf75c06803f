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
    assert!(
        out.contains("serial-bridge pty:/tmp/ttyA pty:/tmp/ttyB"),
        "{out}"
    );
    // The exit codes, from their one list.
    for (code, meaning) in serial_bridge::error::exit::CODES {
        assert!(out.contains(&format!("  {code} {meaning}")), "{out}");
    }
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
fn socat_spellings_exit_2_before_anything_opens() {
    let link = std::env::temp_dir().join(format!("serial-bridge-socat-{}", std::process::id()));
    let pty = format!("pty:{}", link.display());
    let (code, _, err) = run(&[&pty, "tcp-listen:5000"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.trim(),
        "serial-bridge: tcp-listen:5000: not a serial port; did you mean tcp-listen://5000?"
    );
    assert!(
        !link.exists(),
        "a pty was made before the arguments were checked"
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

#[test]
fn absurd_values_are_bad_arguments_not_panics() {
    let (a, b) = (Pty::new(), Pty::new());
    for (args, why) in [
        (
            &["--max-line", "18446744073709551615"][..],
            "at most 67108864",
        ),
        (&["--max-line", "67108865"], "at most 67108864"),
        (
            &["--stats", "9223372036854775807"],
            "--stats 9223372036854775807: must be from 1 to 86400 s",
        ),
        (
            &["--flush-after", "86400001"],
            "must be from 1 to 86400000 ms",
        ),
        (
            &["--settle", "18446744073709551615"],
            "must be from 0 to 86400000 ms",
        ),
    ] {
        let mut all = args.to_vec();
        all.extend([a.path.as_str(), b.path.as_str()]);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let spec = format!("{},settle=86400001", a.path);
    let (code, _, err) = run(&[&spec, &b.path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("settle is at most 86400000 ms"), "{err}");
}

#[test]
fn log_file_errors_are_bad_arguments_with_their_own_message() {
    let (a, b) = (Pty::new(), Pty::new());
    for (file, why) in [
        (
            "/nonexistent-dir/x.log",
            "--log-file /nonexistent-dir/x.log: cannot open: no such file or directory (does its folder exist?)",
        ),
        ("", "--log-file needs a path"),
    ] {
        let (code, _, err) = run(&["--log-file", file, &a.path, &b.path]);
        assert_eq!(code, 2, "{file:?}: {err}");
        assert!(err.contains(why), "{file:?}: {err}");
        assert!(!err.contains("--list") && !err.contains("dialout"), "{err}");
    }
    // The log file may not be one of the ports, however it is named.
    let link = std::env::temp_dir().join(format!("sb-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&b.path, &link).unwrap();
    for file in [b.path.as_str(), link.to_str().unwrap()] {
        let (code, _, err) = run(&["--log-file", file, &a.path, &b.path]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains("log lines would go into its data"), "{err}");
    }
    std::fs::remove_file(&link).unwrap();
    // Stdout, when it is a port, whichever way it is named.
    for file in ["/dev/stdout", "/proc/self/fd/1"] {
        let (code, _, err) = run(&["--log-file", file, "-", &b.path]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains("that is the port -"), "{err}");
    }
    // A link to a pty link the bridge is about to make: refused, and nothing made.
    let dir = std::env::temp_dir().join(format!("sb-loglink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (made, to_it) = (dir.join("lB"), dir.join("lBlink"));
    std::os::unix::fs::symlink(&made, &to_it).unwrap();
    let spec = format!("pty:{}", made.display());
    let (code, _, err) = run(&["--log-file", to_it.to_str().unwrap(), &spec, "pty"]);
    assert_eq!(code, 2, "{err}");
    assert!(!made.exists(), "the log file was made at the pty's link");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_new_ptys_or_ephemeral_listeners_are_not_the_same_port() {
    use crate::util::Bridge;
    for args in [
        ["pty", "pty"],
        ["tcp-listen://0", "tcp-listen://0"],
        ["ws-listen://0", "ws-listen://0,origin=*"],
    ] {
        let bridge = Bridge::start(&args);
        bridge.signal("INT");
        let (status, log) = bridge.wait(std::time::Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{args:?}: {log}");
    }
}

#[test]
fn a_pty_bridged_to_its_own_link_is_refused() {
    let dir = std::env::temp_dir().join(format!("sb-self-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("a");
    let other = dir.join("b");
    let _ = std::fs::remove_file(&other);
    // Named the same way, and through a second link made beforehand.
    std::os::unix::fs::symlink(&link, &other).unwrap();
    let spec = format!("pty:{}", link.display());
    for b in [link.to_str().unwrap(), other.to_str().unwrap()] {
        let (code, _, err) = run(&[&spec, b]);
        assert_eq!(code, 2, "{b}: {err}");
        assert!(
            err.contains("given as both ports") || err.contains("the same device as"),
            "{b}: {err}"
        );
        assert!(!link.exists(), "the link was left behind");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_secret_is_ever_echoed() {
    for endpoint in [
        "mqtt://me:hunter2@broker,pub=a",
        "mqtt:me:hunter2@broker:1883",
        "ws-listen://8080,token=hunter2,token=again",
        "ws-listen://8080,token=hunter2,nosuch=1",
    ] {
        let (code, out, err) = run(&["-", endpoint]);
        assert_eq!(code, 2, "{endpoint}: {err}");
        assert!(
            !format!("{out}{err}").contains("hunter2"),
            "{endpoint}: {err}"
        );
        assert!(err.contains("***"), "{endpoint}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn option_errors_are_in_the_tools_words_with_a_did_you_mean() {
    for (args, message) in [
        (
            &["--reconect", "a", "b"][..],
            "unknown option --reconect; did you mean --reconnect?",
        ),
        (
            &["--baud", "abc", "a", "b"],
            "--baud abc: expected a whole number, 0 or more",
        ),
        (&["a", "b", "--baud"], "--baud needs a value"),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("serial-bridge: {message} (see --help)"),
            "{args:?}"
        );
    }
}

#[test]
fn help_names_option_values_and_lists_each_endpoint_on_its_own_entry() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for line in [
        "  --baud RATE  ",
        "  --max-line BYTES",
        "  --log-level LEVEL\n",
    ] {
        assert!(help.contains(line), "{line:?}: {help}");
    }
    let endpoints = help
        .split("\nEndpoints:\n")
        .nth(1)
        .expect("an Endpoints section");
    for form in [
        "PATH[,KEY=VALUE]...",
        "usb:VID:PID",
        "tcp://",
        "tcp-listen://",
        "ws://",
        "ws-listen://",
        "mqtt://",
        "udp://",
        "udp-listen://",
        "-  ",
        "pty[:LINK]",
    ] {
        assert!(
            endpoints.contains(&format!("\n  {form}"))
                || endpoints.starts_with(&format!("  {form}")),
            "{form}: {endpoints}"
        );
    }
    assert!(help.contains("WebSocket, MQTT, UDP"), "{help}");
}

#[test]
fn output_to_a_closed_pipe_or_a_full_disk_never_panics() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_serial-bridge");
    for args in [
        &["--help"][..],
        &["--version"],
        &["--list"],
        &["--list", "--json"],
    ] {
        // A pipe whose reader is gone: the output ends quietly.
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors, which the OwnedFds below then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are new and owned by nobody else.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(reader);
        let out = Command::new(bin)
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // A full disk: one line, exit 1.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(bin)
            .args(args)
            .stdout(Stdio::from(full))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if args[0] == "--list" && err.contains("no serial ports found") {
            continue; // nothing was written
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            "serial-bridge: cannot write to stdout: no space left on device (os error 28)",
            "{args:?}"
        );
    }
    let (code, _, err) = run(&["--list", "/dev/ttyACM0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--list takes no endpoint"), "{err}");
}

#[test]
fn control_characters_in_messages_are_shown_escaped_and_bad_topics_refused() {
    let (code, _, err) = run(&["-", "mqtt://broker,pub=a\u{1}b"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'pub=a\\u{1}b': a topic cannot hold U+0001"),
        "{err}"
    );
    let (code, _, err) = run(&["/dev/nosuch\u{1b}[31m", "-"]);
    assert_eq!(code, 3, "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    assert!(
        err.starts_with("serial-bridge: /dev/nosuch\\u{1b}[31m: "),
        "{err}"
    );
}

#[test]
fn a_password_file_that_is_endless_a_fifo_or_too_long_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("sb-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that lives over the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let long = dir.join("long");
    std::fs::write(&long, vec![b'p'; 65_536]).unwrap();
    let fine = dir.join("fine");
    std::fs::write(&fine, [vec![b'p'; 65_535], b"\r\n".to_vec()].concat()).unwrap();
    for (file, why) in [
        ("/dev/zero", "not a regular file"),
        (fifo.to_str().unwrap(), "not a regular file"),
        (long.to_str().unwrap(), "longer than 65535 bytes"),
        // Read whole, it goes on to connect: nobody listens on port 1.
        (fine.to_str().unwrap(), "connection refused"),
    ] {
        let endpoint = format!("mqtt://me@127.0.0.1:1,pub=a,password-file={file}");
        let (code, _, err) = run(&["-", &endpoint]);
        assert_eq!(code, 3, "{file}: {err}");
        assert!(err.contains(why), "{file}: {err}");
    }
    let (code, _, err) = run(&["-", &format!("mqtt://{}@h,pub=a", "u".repeat(65_536))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a user name is at most 65535 bytes"));
    std::fs::remove_dir_all(&dir).unwrap();
}
