//! `--list` and `--list --json`: every serial port present, and for each USB one the
//! selector that names it exactly, ready to copy.
//!
//! The text form is for people: one port a line, in columns (path, selector,
//! description). The JSON form is for scripts and is hand-written (one small object
//! per port; the crate has no JSON dependency and this is all it would be used for).
//! Its fields, always all present, `null` where unknown:
//!
//! | field | meaning |
//! | --- | --- |
//! | `path` | what to open: `/dev/ttyUSB0`, `COM3` |
//! | `type` | `usb`, `pci`, `bluetooth` or `other` |
//! | `selector` | the shortest selector naming this port alone, or `null` |
//! | `vid`, `pid` | four lowercase hex digits, as in selectors |
//! | `serial` | the serial number, normalised as selectors compare it |
//! | `reported_serial` | the serial number as the OS reported it |
//! | `manufacturer`, `product` | the device's own strings |
//! | `location` | where it is plugged in, in the OS's own form |
//! | `interface` | the USB interface number (a number) |
//! | `dialin_of` | macOS: the `/dev/cu.*` port this `/dev/tty.*` twin duplicates |
//!
//! Beside `ports`, `warnings` holds what the scan could not read (also on stderr).

use std::fmt::Write as _;

use super::pick::selector_for;
use super::port::{Kind, Port, Scan};
use super::scan;
use crate::error::Error;

/// Scans and prints the list to stdout (JSON with `json`), warnings to stderr.
pub fn print(json: bool) -> Result<(), Error> {
    let scan = scan::scan().map_err(|why| Error::Setup {
        what: "--list".into(),
        source: std::io::Error::other(why),
    })?;
    for warning in &scan.warnings {
        eprintln!("serial-bridge: warning: {warning}");
    }
    if json {
        crate::error::write_stdout(&to_json(&scan))
    } else if scan.ports.is_empty() {
        eprintln!("serial-bridge: no serial ports found");
        Ok(())
    } else {
        crate::error::write_stdout(&to_text(&scan.ports))
    }
}

/// The selector column and description of one port.
fn columns(port: &Port, ports: &[Port]) -> (String, String) {
    let Kind::Usb(usb) = &port.kind else {
        let what = match port.kind {
            Kind::Pci => "PCI serial port",
            Kind::Bluetooth => "Bluetooth serial link",
            _ => "serial port, not USB",
        };
        return ("-".into(), what.into());
    };
    if let Some(callout) = &port.dialin_of {
        return ("-".into(), format!("dial-in twin of {callout}"));
    }
    let about: Vec<&str> = [&usb.manufacturer, &usb.product]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let about = printable(&about.join(" "));
    match selector_for(port, ports) {
        Some(selector) => (selector.to_string(), about),
        None => (
            "-".into(),
            format!(
                "USB {:04x}:{:04x} {about}, not told apart from another: name its path",
                usb.vid, usb.pid
            ),
        ),
    }
}

/// The text form: path, selector and description in columns.
pub fn to_text(ports: &[Port]) -> String {
    let rows: Vec<(&str, String, String)> = ports
        .iter()
        .map(|port| {
            let (selector, about) = columns(port, ports);
            (port.path.as_str(), selector, about)
        })
        .collect();
    let path_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let selector_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (path, selector, about) in rows {
        let line = format!("{path:path_width$}  {selector:selector_width$}  {about}");
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Device strings with control characters shown as `\xNN`, so a line stays a line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The JSON form; see the module doc for its fields.
pub fn to_json(scan: &Scan) -> String {
    let mut out = String::from("{\n  \"ports\": [");
    for (i, port) in scan.ports.iter().enumerate() {
        out += if i == 0 { "\n    {" } else { ",\n    {" };
        let usb = match &port.kind {
            Kind::Usb(usb) => Some(usb),
            _ => None,
        };
        let hex = |id: u16| format!("{id:04x}");
        let selector = selector_for(port, &scan.ports).map(|s| s.to_string());
        let fields: [(&str, Option<String>); 10] = [
            ("path", Some(port.path.clone())),
            ("type", Some(port.kind.name().to_string())),
            ("selector", selector),
            ("vid", usb.map(|u| hex(u.vid))),
            ("pid", usb.map(|u| hex(u.pid))),
            ("serial", usb.and_then(|u| u.serial.clone())),
            (
                "reported_serial",
                usb.and_then(|u| u.reported_serial.clone()),
            ),
            ("manufacturer", usb.and_then(|u| u.manufacturer.clone())),
            ("product", usb.and_then(|u| u.product.clone())),
            ("location", usb.and_then(|u| u.location.clone())),
        ];
        for (name, value) in fields {
            let _ = write!(out, "\"{name}\": ");
            match value {
                Some(value) => string(&mut out, &value),
                None => out += "null",
            }
            out += ", ";
        }
        out += "\"interface\": ";
        match usb.and_then(|u| u.interface) {
            Some(n) => out += &n.to_string(),
            None => out += "null",
        }
        out += ", \"dialin_of\": ";
        match &port.dialin_of {
            Some(callout) => string(&mut out, callout),
            None => out += "null",
        }
        out.push('}');
    }
    out += if scan.ports.is_empty() {
        "],\n"
    } else {
        "\n  ],\n"
    };
    out += "  \"warnings\": [";
    for (i, warning) in scan.warnings.iter().enumerate() {
        out += if i == 0 { "" } else { ", " };
        string(&mut out, warning);
    }
    out += "]\n}\n";
    out
}

/// Appends `text` as a JSON string (RFC 8259): quotes, backslashes and control
/// characters escaped, everything else as UTF-8.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => *out += "\\\"",
            '\\' => *out += "\\\\",
            '\n' => *out += "\\n",
            '\r' => *out += "\\r",
            '\t' => *out += "\\t",
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::{Os, Usb, normalise};
    use super::*;

    fn ports() -> Vec<Port> {
        let usb = |path: &str, vid, pid, serial: Option<&str>, about: [Option<&str>; 2]| {
            let mut usb = Usb::reported(vid, pid, serial);
            usb.manufacturer = about[0].map(str::to_string);
            usb.product = about[1].map(str::to_string);
            usb.interface = Some(0);
            Port {
                path: path.into(),
                kind: Kind::Usb(usb),
                dialin_of: None,
            }
        };
        let mut ch340 = [
            usb(
                "/dev/ttyUSB1",
                0x1a86,
                0x7523,
                None,
                [None, Some("USB Serial")],
            ),
            usb(
                "/dev/ttyUSB2",
                0x1a86,
                0x7523,
                None,
                [None, Some("USB Serial")],
            ),
        ];
        for (port, location) in ch340.iter_mut().zip(["1-1.3", "1-1.4"]) {
            if let Kind::Usb(usb) = &mut port.kind {
                usb.location = Some(location.into());
            }
        }
        let [c1, c2] = ch340;
        normalise(
            vec![
                usb(
                    "/dev/ttyACM0",
                    0x2341,
                    0x0043,
                    Some("85735313233351F0B1E1"),
                    [Some("Arduino (www.arduino.cc)"), Some("Uno")],
                ),
                Port {
                    path: "/dev/ttyS0".into(),
                    kind: Kind::Other,
                    dialin_of: None,
                },
                usb(
                    "/dev/ttyUSB0",
                    0x0403,
                    0x6001,
                    Some("A\"q\\uo\te\u{1}é"),
                    [Some("FTDI"), Some("FT232R\nUSB UART")],
                ),
                c1,
                c2,
            ],
            Os::Linux,
        )
    }

    #[test]
    fn text_lines_up_and_names_each_port_exactly() {
        assert_eq!(
            to_text(&ports()),
            "\
/dev/ttyACM0  usb:2341:0043:85735313233351F0B1E1     Arduino (www.arduino.cc) Uno
/dev/ttyS0    -                                      serial port, not USB
/dev/ttyUSB0  usb:0403:6001:A%22q%5Cuo%09e%01%C3%A9  FTDI FT232R\\x0aUSB UART
/dev/ttyUSB1  usb:1a86:7523@1-1.3                    USB Serial
/dev/ttyUSB2  usb:1a86:7523@1-1.4                    USB Serial
"
        );
    }

    #[test]
    fn json_escapes_what_it_must() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}\u{1f}é\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001\\u001fé\u{7f}\"");
        let scan = Scan::default();
        assert_eq!(
            to_json(&scan),
            "{\n  \"ports\": [],\n  \"warnings\": []\n}\n"
        );
    }

    /// Python's json module reads it back to the same values: the proof that the
    /// hand-written JSON is JSON.
    #[test]
    fn json_parses_back_in_python() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let scan = Scan {
            ports: ports(),
            warnings: vec!["/dev/ttyX: \"odd\"\tthing".into()],
        };
        let json = to_json(&scan);
        let check = r#"
import json, sys
doc = json.load(sys.stdin)
keys = ["path", "type", "selector", "vid", "pid", "serial", "reported_serial",
        "manufacturer", "product", "location", "interface", "dialin_of"]
for port in doc["ports"]:
    assert list(port) == keys, list(port)
ftdi = doc["ports"][2]
assert ftdi["serial"] == "A\"q\\uo\te\u0001\u00e9", ftdi
assert ftdi["product"] == "FT232R\nUSB UART"
assert ftdi["vid"] == "0403" and ftdi["pid"] == "6001" and ftdi["interface"] == 0
assert doc["ports"][1] == {"path": "/dev/ttyS0", "type": "other", "selector": None,
    "vid": None, "pid": None, "serial": None, "reported_serial": None,
    "manufacturer": None, "product": None, "location": None, "interface": None,
    "dialin_of": None}, doc["ports"][1]
assert doc["ports"][3]["selector"] == "usb:1a86:7523@1-1.3"
assert doc["ports"][3]["location"] == "1-1.3"
assert doc["warnings"] == ["/dev/ttyX: \"odd\"\tthing"]
print("ok")
"#;
        let child = Command::new("python3")
            .args(["-c", check])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            assert!(std::env::var_os("CI").is_none(), "python3 missing under CI");
            eprintln!("skipped: no python3");
            return;
        };
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(json.as_bytes())
            .expect("write JSON to python3");
        let output = child.wait_with_output().expect("python3 ran");
        assert!(
            output.status.success(),
            "{}\n{json}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, b"ok\n");
    }
}
