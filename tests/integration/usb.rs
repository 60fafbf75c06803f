//! USB selectors through the binary: the messages and exit codes a user sees. This
//! machine has no USB serial device, so "no match" is real here; the match and the
//! replug are proven with an emulated FTDI adapter in a VM (scripts/usb-vm).

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Bridge, PATIENCE, Pty, have, run};

/// No board has this serial number.
const ABSENT: &str = "usb:2341:0043:NO-SUCH-BOARD";

#[test]
fn no_matching_device_exits_3_naming_it() {
    let other = Pty::new();
    let (code, _, err) = run(&[&format!("{ABSENT},baud=115200"), &other.path]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with(
            "serial-bridge: usb:2341:0043:NO-SUCH-BOARD: cannot open: \
             no USB serial device 2341:0043:NO-SUCH-BOARD present"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_selectors_exit_2_saying_what_to_type() {
    for (arg, why) in [
        ("usb:2341", "usb:2341: missing the product ID"),
        (
            "usb:2341:zz",
            "usb:2341:zz: product ID 'zz' is not hexadecimal",
        ),
        ("usb:2341:0043:", "empty serial"),
        ("usb:2341:0043/one", "interface 'one' is not a number"),
    ] {
        let (code, _, err) = run(&[arg, "-"]);
        assert_eq!(code, 2, "{arg}: {err}");
        assert!(err.starts_with("serial-bridge: "), "{err}");
        assert!(err.contains(why), "{arg}: {err}");
        assert!(err.contains("expected usb:VID:PID[:SERIAL]"), "{err}");
    }
}

#[test]
fn serial_settings_work_after_a_selector() {
    let (code, _, err) = run(&["usb:2341:0043,baud=fast", "-"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("usb:2341:0043: bad setting 'baud=fast'"),
        "{err}"
    );
    // Two spellings of one selector are one port.
    let (code, _, err) = run(&["usb:2341:0043", "USB:2341:43,baud=115200"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("given as both ports"), "{err}");
}

#[test]
fn with_reconnect_an_absent_device_is_waited_for_and_logged_once() {
    let other = Pty::new();
    let bridge = Bridge::start(&["--reconnect", "-v", ABSENT, &other.path]);
    // Each attempt logs at debug level; the warning comes once.
    let deadline = Instant::now() + PATIENCE;
    while bridge.stderr().matches("trying again").count() < 3 {
        assert!(Instant::now() < deadline, "no retries: {}", bridge.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    let log = bridge.stderr();
    assert_eq!(
        log.matches("waiting for it (--reconnect)").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("no USB serial device 2341:0043:NO-SUCH-BOARD present"),
        "{log}"
    );
    bridge.signal("INT");
    let (status, log) = bridge.wait(PATIENCE);
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn json_is_only_for_list() {
    let (code, _, err) = run(&["--json", "/dev/a", "/dev/b"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--json only works with --list"), "{err}");
}

#[test]
fn list_json_parses_with_the_documented_fields() {
    let (code, out, err) = run(&["--list", "--json"]);
    assert_eq!(code, 0, "{err}");
    if !have("python3", &["--version"]) {
        return;
    }
    let check = r#"
import json, sys
doc = json.loads(sys.stdin.read())
assert sorted(doc) == ["ports", "warnings"], doc
keys = ["path", "type", "selector", "vid", "pid", "serial", "reported_serial",
        "manufacturer", "product", "location", "interface", "dialin_of"]
for port in doc["ports"]:
    assert list(port) == keys, port
    assert port["type"] in ("usb", "pci", "bluetooth", "other"), port
    if port["selector"] is not None:
        assert port["selector"].startswith("usb:" + port["vid"] + ":" + port["pid"]), port
print(len(doc["ports"]))
"#;
    let mut python = Command::new("python3")
        .args(["-c", check])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    std::io::Write::write_all(&mut python.stdin.take().expect("piped"), out.as_bytes())
        .expect("write to python3");
    let result = python.wait_with_output().expect("python3 ran");
    assert!(
        result.status.success(),
        "{}\n{out}",
        String::from_utf8_lossy(&result.stderr)
    );
}
