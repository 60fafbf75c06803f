//! The selector: `usb:VID:PID[:SERIAL][@LOCATION][/INTERFACE]`, parsed and shown.
//!
//! VID and PID are hex in either case and shown in lowercase. A serial or location
//! may hold any text: a byte that would end its part of the selector (`,` `@` `/`
//! `%`), or that a shell (sh, cmd, PowerShell) would act on, is written `%XX`, so
//! what `--list` prints can be pasted as it is and parses back to the same selector.

use std::fmt;
use std::str::FromStr;

use super::port::Usb;

/// What a selector starts with (in any case).
pub const PREFIX: &str = "usb:";

/// The selector syntax, for messages.
const SYNTAX: &str = "usb:VID:PID[:SERIAL][@LOCATION][/INTERFACE], e.g. usb:2341:0043 \
                      (`serial-bridge --list` prints the selector of each device present)";

/// Whether a port argument is a USB selector rather than a path.
pub fn is_selector(text: &str) -> bool {
    text.get(..PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PREFIX))
}

/// A USB serial device, named by identity: vendor and product ID, and optionally its
/// serial number, where it is plugged in and which of its interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// USB vendor ID.
    pub vid: u16,
    /// USB product ID.
    pub pid: u16,
    /// Serial number; compared without regard to ASCII case (Windows may upper-case it).
    pub serial: Option<String>,
    /// The USB port path as the OS reports it (`1-1.2` on Linux).
    pub location: Option<String>,
    /// The USB interface number, for devices with several serial ports.
    pub interface: Option<u8>,
}

impl Selector {
    /// A selector for `vid:pid`, any serial, anywhere.
    pub fn new(vid: u16, pid: u16) -> Selector {
        Selector {
            vid,
            pid,
            serial: None,
            location: None,
            interface: None,
        }
    }

    /// Whether this selector names `usb`.
    pub fn matches(&self, usb: &Usb) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        self.vid == usb.vid
            && self.pid == usb.pid
            && self.serial.as_deref().is_none_or(|want| {
                [&usb.serial, &usb.reported_serial]
                    .into_iter()
                    .flatten()
                    .any(|have| same(want, have))
            })
            && self
                .location
                .as_deref()
                .is_none_or(|want| usb.location.as_deref().is_some_and(|have| same(want, have)))
            && self
                .interface
                .is_none_or(|want| usb.interface == Some(want))
    }

    /// The selector without its `usb:` prefix, as messages quote it.
    pub(super) fn body(&self) -> String {
        self.to_string()[PREFIX.len()..].to_string()
    }
}

impl FromStr for Selector {
    type Err = String;

    /// Parses `usb:VID:PID[:SERIAL][@LOCATION][/INTERFACE]`; the error says what to type.
    fn from_str(text: &str) -> Result<Selector, String> {
        let bad = |why: &str| format!("{text}: {why}; expected {SYNTAX}");
        if !is_selector(text) {
            return Err(bad("not a USB selector"));
        }
        let rest = &text[PREFIX.len()..];
        // The interface, then the location, come off the end: neither may hold `/`
        // or `@` unescaped, while a serial may hold `:`.
        let (rest, interface) = match rest.rsplit_once('/') {
            Some((rest, number)) => match number.parse::<u8>() {
                Ok(number) => (rest, Some(number)),
                Err(_) => return Err(bad(&format!("interface '{number}' is not a number"))),
            },
            None => (rest, None),
        };
        let (rest, location) = match rest.split_once('@') {
            Some((_, "")) => return Err(bad("nothing after '@'; leave it off for any location")),
            Some((rest, location)) => (rest, Some(unescape(location).map_err(|why| bad(&why))?)),
            None => (rest, None),
        };
        let mut parts = rest.splitn(3, ':');
        let id = |part: Option<&str>, what: &str| match part {
            Some(hex) if (1..=4).contains(&hex.len()) => u16::from_str_radix(hex, 16)
                .map_err(|_| bad(&format!("{what} '{hex}' is not hexadecimal"))),
            Some("") | None => Err(bad(&format!("missing the {what}"))),
            Some(hex) => Err(bad(&format!("{what} '{hex}' is longer than 4 hex digits"))),
        };
        let vid = id(parts.next(), "vendor ID")?;
        let pid = id(parts.next(), "product ID")?;
        let serial = match parts.next() {
            Some("") => return Err(bad("empty serial after ':'; leave it off for any serial")),
            Some(serial) => Some(unescape(serial).map_err(|why| bad(&why))?),
            None => None,
        };
        Ok(Selector {
            vid,
            pid,
            serial,
            location,
            interface,
        })
    }
}

impl fmt::Display for Selector {
    /// The canonical form: lowercase hex IDs, `%XX` escapes; it parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:04x}:{:04x}", self.vid, self.pid)?;
        if let Some(serial) = &self.serial {
            write!(f, ":{}", escape(serial))?;
        }
        if let Some(location) = &self.location {
            write!(f, "@{}", escape(location))?;
        }
        if let Some(interface) = self.interface {
            write!(f, "/{interface}")?;
        }
        Ok(())
    }
}

/// Characters a serial or location keeps as they are in a selector: nothing that
/// ends a part of it, and nothing a shell (sh, cmd, PowerShell) would act on.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b':')
}

/// Writes every byte that is not [plain](is_plain) as `%XX`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if is_plain(byte) {
            out.push(byte as char);
        } else {
            out += &format!("%{byte:02X}");
        }
    }
    out
}

/// Turns `%XX` back into bytes; the result must be UTF-8.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let value = match hex {
            [Some(a), Some(b)] => std::str::from_utf8(&[a, b])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        out.push(value.ok_or("'%' must start an escape of two hex digits, e.g. %2C for ','")?);
    }
    String::from_utf8(out).map_err(|_| "the %XX escapes do not spell UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::selector;
    use super::*;

    #[test]
    fn parses_every_part() {
        assert_eq!(selector("usb:2341:0043"), Selector::new(0x2341, 0x0043));
        let s = selector("usb:0403:6010:FT123456@1-1.2/1");
        assert_eq!(s.serial.as_deref(), Some("FT123456"));
        assert_eq!(s.location.as_deref(), Some("1-1.2"));
        assert_eq!(s.interface, Some(1));
        let s = selector("usb:1a86:7523@1-4");
        assert_eq!((s.serial, s.location.as_deref()), (None, Some("1-4")));
        // A serial may hold ':'; only '@', '/' and ',' end it.
        assert_eq!(selector("usb:1:2:a:b").serial.as_deref(), Some("a:b"));
        assert_eq!(selector("usb:1:2/0").interface, Some(0));
    }

    #[test]
    fn hex_ids_in_either_case_and_length() {
        for text in [
            "usb:2341:0043",
            "USB:2341:0043",
            "usb:2341:43",
            "Usb:2341:0043",
        ] {
            assert_eq!(selector(text), Selector::new(0x2341, 0x43), "{text}");
        }
        assert_eq!(selector("usb:1A86:7523"), selector("usb:1a86:7523"));
        assert_eq!(selector("usb:1A86:7523").to_string(), "usb:1a86:7523");
    }

    #[test]
    fn escapes_round_trip() {
        let s = selector("usb:1:2:a%2Cb%40c%2Fd%25e%20f");
        assert_eq!(s.serial.as_deref(), Some("a,b@c/d%e f"));
        assert_eq!(s.to_string(), "usb:0001:0002:a%2Cb%40c%2Fd%25e%20f");
        assert_eq!(selector(&s.to_string()), s);
        // A Windows location, as serialport shows it, printed shell-safe.
        let mut windows = Selector::new(0x1a86, 0x7523);
        windows.location = Some("PCIROOT(0)#PCI(1400)#USBROOT(0)-1.2".into());
        let text = windows.to_string();
        assert_eq!(
            text,
            "usb:1a86:7523@PCIROOT%280%29%23PCI%281400%29%23USBROOT%280%29-1.2"
        );
        assert_eq!(selector(&text), windows);
        // Typed literally (quoted), it parses too.
        assert_eq!(
            selector("usb:1a86:7523@PCIROOT(0)#PCI(1400)#USBROOT(0)-1.2"),
            windows
        );
        let mut utf8 = Selector::new(1, 2);
        utf8.serial = Some("Grüße\t1".into());
        assert_eq!(utf8.to_string(), "usb:0001:0002:Gr%C3%BC%C3%9Fe%091");
        assert_eq!(selector(&utf8.to_string()), utf8);
    }

    #[test]
    fn bad_selectors_say_what_to_type() {
        for (text, why) in [
            ("usb:", "missing the vendor ID"),
            ("usb:2341", "missing the product ID"),
            ("usb:2341:", "missing the product ID"),
            ("usb::0043", "missing the vendor ID"),
            ("usb:23g1:0043", "vendor ID '23g1' is not hexadecimal"),
            (
                "usb:2341:00430",
                "product ID '00430' is longer than 4 hex digits",
            ),
            ("usb:2341:0043:", "empty serial"),
            ("usb:2341:0043@", "nothing after '@'"),
            ("usb:2341:0043/x", "interface 'x' is not a number"),
            ("usb:2341:0043/", "interface '' is not a number"),
            ("usb:2341:0043:ab%2", "two hex digits"),
            ("usb:2341:0043:ab%zz", "two hex digits"),
            ("usb:2341:0043:%FF", "UTF-8"),
        ] {
            let error = text.parse::<Selector>().unwrap_err();
            assert!(error.starts_with(&format!("{text}: ")), "{error}");
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.contains("expected usb:VID:PID"), "{error}");
            assert!(error.contains("--list"), "{error}");
        }
    }

    #[test]
    fn serial_settings_follow_the_selector() {
        use crate::endpoint::serial::Settings;
        let s: Settings = "usb:2341:0043:8573,baud=115200,dtr=off".parse().unwrap();
        assert_eq!(s.path, "usb:2341:0043:8573");
        assert_eq!(s.baud, Some(115200));
        assert_eq!(s.dtr, Some(false));
        let mut want = Selector::new(0x2341, 0x43);
        want.serial = Some("8573".into());
        assert_eq!(s.usb, Some(want));
        // The canonical form names it, so two spellings are caught as one port.
        let s: Settings = "USB:2341:43".parse().unwrap();
        assert_eq!(s.path, "usb:2341:0043");
        assert!("/dev/ttyUSB0".parse::<Settings>().unwrap().usb.is_none());
        let error = "usb:2341,baud=9600".parse::<Settings>().unwrap_err();
        assert!(error.contains("missing the product ID"), "{error}");
        let error = "usb:2341:0043,baud=fast".parse::<Settings>().unwrap_err();
        assert!(error.contains("bad setting 'baud=fast'"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn any_serial_and_location_round_trip(
            serial in proptest::option::of("\\PC{1,12}"),
            location in proptest::option::of("\\PC{1,12}"),
            interface: Option<u8>,
            vid: u16,
            pid: u16,
        ) {
            let selector = Selector { vid, pid, serial, location, interface };
            let text = selector.to_string();
            proptest::prop_assert!(!text.contains(',') && !text.contains(' '), "{}", text);
            proptest::prop_assert_eq!(text.parse::<Selector>().unwrap(), selector);
        }
    }
}
