//! USB identity selectors: name a board, not a port.
//!
//! `usb:VID:PID[:SERIAL][@LOCATION][/INTERFACE]` names a USB serial device by what it
//! is rather than by the name the OS gave it this time (`/dev/ttyACM0` today,
//! `/dev/ttyACM1` after a replug, `COM7` instead of `COM3`). A [`Selector`] is parsed
//! with the serial settings (`usb:2341:0043,baud=115200`) and resolved to a device path
//! each time the port is opened, so `--reconnect` follows a board that comes back under
//! another name.
//!
//! Everything here except enumeration is pure, so it is unit-tested over lists of port
//! descriptions as each OS reports them:
//!
//! - [`Selector`]: parsing and display. VID and PID are hex in either case; a serial
//!   or location holding a character that would end the selector (`,` `@` `/` `%`) or
//!   trouble a shell is written `%XX`, as `--list` prints it.
//! - [`normalise`]: what the OSes get wrong, put right where it is known (Windows:
//!   FTDI's channel letter, invented serials; macOS: the dial-in twin of each port).
//! - [`matching`] and [`pick`]: which present ports a selector names, and the one
//!   line a user sees when it names none or several. Never one at random.
//! - [`selector_for`]: the shortest selector that names exactly one present port,
//!   which `--list` prints and the "several match" message offers.
//!
//! Enumeration: on Linux [`sysfs`] reads `/sys/class/tty` itself, because serialport's
//! enumerator without libudev panics when that directory is missing and skips a USB
//! port whose location cannot be read; here the first is an error and the second is
//! listed without a location, with a warning. Elsewhere serialport enumerates.

use std::fmt;
use std::io;
use std::str::FromStr;

pub mod list;
#[cfg(target_os = "linux")]
pub mod sysfs;

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
    fn body(&self) -> String {
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

/// Which OS reported a port list: each gets different things wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux: sysfs, as the device reports itself.
    Linux,
    /// Windows: the device instance ID, parsed by serialport.
    Windows,
    /// macOS: the I/O registry.
    MacOs,
    /// Anything else serialport supports.
    Other,
}

impl Os {
    /// The OS this binary runs on.
    pub const CURRENT: Os = if cfg!(target_os = "linux") {
        Os::Linux
    } else if cfg!(windows) {
        Os::Windows
    } else if cfg!(target_os = "macos") {
        Os::MacOs
    } else {
        Os::Other
    };
}

/// A serial port present on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// What to open: `/dev/ttyUSB0`, `COM3`.
    pub path: String,
    /// What kind of port it is.
    pub kind: Kind,
    /// On macOS, the callout device (`/dev/cu.*`) this dial-in device (`/dev/tty.*`)
    /// is the twin of. Twins are listed but never matched: the same device would
    /// otherwise always match twice.
    pub dialin_of: Option<String>,
}

/// The kinds of serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A USB serial device, with what it tells about itself.
    Usb(Usb),
    /// A PCI serial card.
    Pci,
    /// A Bluetooth serial link.
    Bluetooth,
    /// A built-in UART or anything else.
    Other,
}

impl Kind {
    /// A short name, as `--list` and its JSON use it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Usb(_) => "usb",
            Kind::Pci => "pci",
            Kind::Bluetooth => "bluetooth",
            Kind::Other => "other",
        }
    }
}

/// What a USB serial device tells about itself, after [`normalise`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usb {
    /// Vendor ID.
    pub vid: u16,
    /// Product ID.
    pub pid: u16,
    /// The serial number, normalised: what another OS would report for the device.
    pub serial: Option<String>,
    /// The serial number exactly as this OS reported it.
    pub reported_serial: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Where it is plugged in, as the OS reports it.
    pub location: Option<String>,
    /// The USB interface this port belongs to.
    pub interface: Option<u8>,
}

impl Usb {
    /// A device as enumeration reports it, before [`normalise`].
    pub fn reported(vid: u16, pid: u16, serial: Option<&str>) -> Usb {
        Usb {
            vid,
            pid,
            serial: serial.map(str::to_string),
            reported_serial: serial.map(str::to_string),
            ..Usb::default()
        }
    }
}

/// FTDI's vendor ID: its Windows driver appends a channel letter to the serial.
const FTDI: u16 = 0x0403;

/// Puts right what `os` is known to report differently from the device itself, so a
/// selector copied on one OS finds the device on another. What is reported stays in
/// [`Usb::reported_serial`], and a selector matches either form.
///
/// - All: surrounding blanks trimmed; an empty serial is no serial.
/// - Windows: serialport reads the serial from the device instance ID. For a device
///   without one, Windows invents an ID such as `6&A694CA9&0&0000`, of which
///   serialport keeps the first digit (serialport-rs issue #203): a serial that is a
///   single digit, or holds `&`, is no serial.
/// - Windows: FTDI's driver appends the channel letter (`A`, `B`, ...) to the serial
///   (`A702TB52` becomes `A702TB52A`); it is taken off and becomes the interface
///   number (A is 0), as Linux reports the channel.
/// - macOS: every port appears twice, `/dev/cu.X` and `/dev/tty.X`; the `tty` twin is
///   marked [`Port::dialin_of`] and not matched.
pub fn normalise(mut ports: Vec<Port>, os: Os) -> Vec<Port> {
    for port in &mut ports {
        let Kind::Usb(usb) = &mut port.kind else {
            continue;
        };
        let trimmed = usb
            .reported_serial
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        usb.serial = trimmed.map(str::to_string);
        if os != Os::Windows {
            continue;
        }
        if let Some(serial) = &usb.serial {
            let invented = serial.contains('&')
                || (serial.len() == 1 && serial.bytes().all(|b| b.is_ascii_digit()));
            if invented {
                usb.serial = None;
            }
        }
        if usb.vid == FTDI
            && let Some(serial) = &usb.serial
            && serial.len() > 1
            && let Some(channel @ b'A'..=b'D') = serial.bytes().last()
        {
            usb.interface.get_or_insert(channel - b'A');
            usb.serial = Some(serial[..serial.len() - 1].to_string());
        }
    }
    if os == Os::MacOs {
        let callouts: Vec<String> = ports.iter().map(|p| p.path.clone()).collect();
        for port in &mut ports {
            if let Some(name) = port.path.strip_prefix("/dev/tty.") {
                let callout = format!("/dev/cu.{name}");
                if callouts.contains(&callout) {
                    port.dialin_of = Some(callout);
                }
            }
        }
    }
    ports
}

/// The USB description of a port that selectors may match.
fn matchable(port: &Port) -> Option<&Usb> {
    match &port.kind {
        Kind::Usb(usb) if port.dialin_of.is_none() => Some(usb),
        _ => None,
    }
}

/// The ports `selector` names.
pub fn matching<'a>(selector: &Selector, ports: &'a [Port]) -> Vec<&'a Port> {
    ports
        .iter()
        .filter(|port| matchable(port).is_some_and(|usb| selector.matches(usb)))
        .collect()
}

/// The shortest selector that names `port` and no other port in `ports`: the serial
/// if it has one, then the interface, then the location, then both. `None` for a port
/// that is not USB, or that no selector tells apart (two ports without serial whose
/// location the OS does not report).
pub fn selector_for(port: &Port, ports: &[Port]) -> Option<Selector> {
    let usb = matchable(port)?;
    let mut plain = Selector::new(usb.vid, usb.pid);
    plain.serial = usb.serial.clone();
    let with_interface = usb.interface.map(|interface| Selector {
        interface: Some(interface),
        ..plain.clone()
    });
    let with_location = usb.location.clone().map(|location| Selector {
        location: Some(location),
        ..plain.clone()
    });
    let with_both = match (&with_location, usb.interface) {
        (Some(located), Some(interface)) => Some(Selector {
            interface: Some(interface),
            ..located.clone()
        }),
        _ => None,
    };
    [Some(plain), with_interface, with_location, with_both]
        .into_iter()
        .flatten()
        .find(|selector| {
            let found = matching(selector, ports);
            found.len() == 1 && found[0].path == port.path
        })
}

/// How messages name a present port: its selector and path.
fn describe(port: &Port, ports: &[Port]) -> String {
    match selector_for(port, ports) {
        Some(selector) => format!("{selector} at {}", port.path),
        None => format!("{} (no selector tells it apart; name its path)", port.path),
    }
}

/// Why a selector named no port; the message is what the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpicked {
    /// No port matches; the message lists the USB serial devices present.
    Absent(String),
    /// Several match; the message lists the selector that picks each one.
    Several(String),
}

impl fmt::Display for Unpicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unpicked::Absent(message) | Unpicked::Several(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Unpicked {}

/// Whether `error` is a USB selector naming several devices: a mistake to fix, not
/// a device to wait for, so even `--reconnect` stops at it when the bridge starts.
pub fn is_ambiguous(error: &crate::error::Error) -> bool {
    match error {
        crate::error::Error::Open { source, .. } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Unpicked>())
            .is_some_and(|why| matches!(why, Unpicked::Several(_))),
        _ => false,
    }
}

/// The one port `selector` names, or why there is not one: none present (listing
/// what is), or several (listing the selector that picks each).
pub fn pick<'a>(selector: &Selector, ports: &'a [Port]) -> Result<&'a Port, Unpicked> {
    let found = matching(selector, ports);
    match found[..] {
        [port] => Ok(port),
        [] => {
            let present: Vec<String> = ports
                .iter()
                .filter(|port| matchable(port).is_some())
                .map(|port| describe(port, ports))
                .collect();
            let body = selector.body();
            Err(Unpicked::Absent(if present.is_empty() {
                format!(
                    "no USB serial device {body} present, nor any other \
                     (is it plugged in, and its driver loaded?)"
                )
            } else {
                format!(
                    "no USB serial device {body} present; present: {}",
                    present.join(", ")
                )
            }))
        }
        _ => {
            let candidates: Vec<String> = found.iter().map(|port| describe(port, ports)).collect();
            Err(Unpicked::Several(format!(
                "{} USB serial devices match, so none is picked; name one: {}",
                found.len(),
                candidates.join(", ")
            )))
        }
    }
}

/// The ports present, and anything odd seen while looking, one line each.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every serial port found, sorted by path.
    pub ports: Vec<Port>,
    /// Ports listed with less than the OS knows, and why.
    pub warnings: Vec<String>,
}

/// Lists the serial ports present, normalised. Never panics; fails only when the OS
/// offers no way to list ports at all.
pub fn scan() -> Result<Scan, String> {
    #[cfg(target_os = "linux")]
    let mut scan = sysfs::scan(
        std::path::Path::new(sysfs::CLASS_TTY),
        std::path::Path::new("/dev"),
    )?;
    #[cfg(not(target_os = "linux"))]
    let mut scan = Scan {
        ports: serialport::available_ports()
            .map_err(|e| {
                format!(
                    "cannot list serial ports: {}",
                    lowercase_first(&e.to_string())
                )
            })?
            .into_iter()
            .map(from_serialport)
            .collect(),
        warnings: Vec::new(),
    };
    scan.ports.sort_by(|a, b| a.path.cmp(&b.path));
    scan.ports = normalise(scan.ports, Os::CURRENT);
    Ok(scan)
}

/// serialport's description of a port as ours (Windows, macOS, the BSDs).
#[cfg(any(not(target_os = "linux"), test))]
fn from_serialport(info: serialport::SerialPortInfo) -> Port {
    use serialport::SerialPortType;
    let kind = match info.port_type {
        SerialPortType::UsbPort(usb) => Kind::Usb(Usb {
            location: usb.location.map(|location| location.to_string()),
            interface: usb.interface,
            manufacturer: usb.manufacturer,
            product: usb.product,
            ..Usb::reported(usb.vid, usb.pid, usb.serial_number.as_deref())
        }),
        SerialPortType::PciPort => Kind::Pci,
        SerialPortType::BluetoothPort => Kind::Bluetooth,
        SerialPortType::Unknown => Kind::Other,
    };
    Port {
        path: info.port_name,
        kind,
        dialin_of: None,
    }
}

/// System messages start with a capital ("No such file or directory"); ours do not.
fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The device path `selector` names now. Called on every open, so a board that came
/// back under another name is found there.
pub fn resolve(selector: &Selector) -> io::Result<String> {
    let scan = scan().map_err(io::Error::other)?;
    for warning in &scan.warnings {
        log::debug!("{warning}");
    }
    let port = pick(selector, &scan.ports).map_err(io::Error::other)?;
    log::info!("{selector} is {}", port.path);
    Ok(port.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(text: &str) -> Selector {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn usb(path: &str, vid: u16, pid: u16, serial: Option<&str>) -> Port {
        Port {
            path: path.into(),
            kind: Kind::Usb(Usb::reported(vid, pid, serial)),
            dialin_of: None,
        }
    }

    fn with(mut port: Port, location: Option<&str>, interface: Option<u8>) -> Port {
        if let Kind::Usb(usb) = &mut port.kind {
            usb.location = location.map(str::to_string);
            usb.interface = interface;
        }
        port
    }

    /// The paths `text` matches among `ports`.
    fn paths(text: &str, ports: &[Port]) -> Vec<String> {
        matching(&selector(text), ports)
            .iter()
            .map(|port| port.path.clone())
            .collect()
    }

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

    #[test]
    fn matches_by_id_serial_location_and_interface() {
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyACM0", 0x2341, 0x43, Some("A1")),
                    Some("1-1"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM1", 0x2341, 0x43, Some("B2")),
                    Some("1-2"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB0", 0x1a86, 0x7523, None),
                    Some("3-1.4"),
                    Some(0),
                ),
                Port {
                    path: "/dev/ttyS0".into(),
                    kind: Kind::Other,
                    dialin_of: None,
                },
            ],
            Os::Linux,
        );
        assert_eq!(
            paths("usb:2341:0043", &ports),
            ["/dev/ttyACM0", "/dev/ttyACM1"]
        );
        assert_eq!(paths("usb:2341:0043:B2", &ports), ["/dev/ttyACM1"]);
        assert_eq!(paths("usb:2341:0043:b2", &ports), ["/dev/ttyACM1"]);
        assert_eq!(paths("usb:2341:0043@1-1", &ports), ["/dev/ttyACM0"]);
        assert_eq!(paths("usb:2341:0043:B2@1-1", &ports), [] as [&str; 0]);
        assert_eq!(paths("usb:1a86:7523", &ports), ["/dev/ttyUSB0"]);
        assert_eq!(paths("usb:1a86:7523:X", &ports), [] as [&str; 0]);
        assert_eq!(paths("usb:1a86:7523/0", &ports), ["/dev/ttyUSB0"]);
        assert_eq!(paths("usb:1a86:7523/1", &ports), [] as [&str; 0]);
        assert_eq!(paths("usb:2341:0042", &ports), [] as [&str; 0]);
    }

    #[test]
    fn one_match_opens_none_and_several_say_why() {
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyACM0", 0x2341, 0x43, Some("A1")),
                    Some("1-1"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM1", 0x2341, 0x43, Some("B2")),
                    Some("1-2"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB0", 0x1a86, 0x7523, None),
                    Some("3-1.4"),
                    Some(0),
                ),
            ],
            Os::Linux,
        );
        assert_eq!(
            pick(&selector("usb:2341:0043:A1"), &ports).unwrap().path,
            "/dev/ttyACM0"
        );
        assert_eq!(
            pick(&selector("usb:2341:0044"), &ports)
                .unwrap_err()
                .to_string(),
            "no USB serial device 2341:0044 present; present: usb:2341:0043:A1 at \
             /dev/ttyACM0, usb:2341:0043:B2 at /dev/ttyACM1, usb:1a86:7523 at /dev/ttyUSB0"
        );
        assert_eq!(
            pick(&selector("usb:2341:0043"), &ports)
                .unwrap_err()
                .to_string(),
            "2 USB serial devices match, so none is picked; name one: \
             usb:2341:0043:A1 at /dev/ttyACM0, usb:2341:0043:B2 at /dev/ttyACM1"
        );
        let error = pick(&selector("usb:2341:0043:NOPE"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("no USB serial device 2341:0043:NOPE present, nor any other"),
            "{error}"
        );
    }

    #[test]
    fn only_several_matches_are_ambiguous() {
        let open = |why: Unpicked| crate::error::Error::Open {
            endpoint: "usb:2341:0043".into(),
            source: io::Error::other(why),
        };
        let several = open(Unpicked::Several("2 USB serial devices match".into()));
        assert!(is_ambiguous(&several));
        assert_eq!(
            several.to_string(),
            "usb:2341:0043: cannot open: 2 USB serial devices match"
        );
        assert!(!is_ambiguous(&open(Unpicked::Absent("none".into()))));
        let missing = crate::error::Error::Open {
            endpoint: "/dev/ttyACM0".into(),
            source: io::ErrorKind::NotFound.into(),
        };
        assert!(!is_ambiguous(&missing));
    }

    #[test]
    fn identical_boards_without_serial_are_told_apart_by_location() {
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyUSB0", 0x1a86, 0x7523, None),
                    Some("1-1.2"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB1", 0x1a86, 0x7523, None),
                    Some("1-1.3"),
                    Some(0),
                ),
            ],
            Os::Linux,
        );
        let error = pick(&selector("usb:1a86:7523"), &ports)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "usb:1a86:7523@1-1.2 at /dev/ttyUSB0, usb:1a86:7523@1-1.3 at /dev/ttyUSB1"
            ),
            "{error}"
        );
        assert_eq!(
            pick(&selector("usb:1a86:7523@1-1.3"), &ports).unwrap().path,
            "/dev/ttyUSB1"
        );
    }

    #[test]
    fn cloned_serials_fall_back_to_location() {
        // Counterfeit FTDI chips share one serial.
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyUSB0", FTDI, 0x6001, Some("A50285BI")),
                    Some("1-1"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB1", FTDI, 0x6001, Some("A50285BI")),
                    Some("1-2"),
                    Some(0),
                ),
            ],
            Os::Linux,
        );
        let picked: Vec<String> = ports
            .iter()
            .map(|port| selector_for(port, &ports).unwrap().to_string())
            .collect();
        assert_eq!(
            picked,
            ["usb:0403:6001:A50285BI@1-1", "usb:0403:6001:A50285BI@1-2"]
        );
    }

    #[test]
    fn ports_of_one_device_are_told_apart_by_interface() {
        // A Black Magic Probe: two CDC ACM ports, one serial, one location.
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyACM0", 0x1d50, 0x6018, Some("85A12F01")),
                    Some("1-3"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM1", 0x1d50, 0x6018, Some("85A12F01")),
                    Some("1-3"),
                    Some(2),
                ),
            ],
            Os::Linux,
        );
        let error = pick(&selector("usb:1d50:6018:85A12F01"), &ports)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "usb:1d50:6018:85A12F01/0 at /dev/ttyACM0, usb:1d50:6018:85A12F01/2 at /dev/ttyACM1"
            ),
            "{error}"
        );
    }

    #[test]
    fn without_location_or_interface_the_path_is_offered() {
        let ports = normalise(
            vec![
                usb("COM3", 0x1a86, 0x7523, None),
                usb("COM4", 0x1a86, 0x7523, None),
            ],
            Os::Windows,
        );
        assert_eq!(selector_for(&ports[0], &ports), None);
        let error = pick(&selector("usb:1a86:7523"), &ports)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("COM3 (no selector tells it apart; name its path)"),
            "{error}"
        );
    }

    #[test]
    fn windows_ftdi_channel_letter_becomes_the_interface() {
        let reported = vec![
            // FT232R: the driver appends 'A' to the real serial A702TB52.
            usb("COM3", FTDI, 0x6001, Some("A702TB52A")),
            // FT2232H: channels A and B.
            usb("COM7", FTDI, 0x6010, Some("FT4ZS6I3A")),
            usb("COM8", FTDI, 0x6010, Some("FT4ZS6I3B")),
        ];
        let windows = normalise(reported.clone(), Os::Windows);
        let Kind::Usb(ft232) = &windows[0].kind else {
            panic!()
        };
        assert_eq!(ft232.serial.as_deref(), Some("A702TB52"));
        assert_eq!(ft232.reported_serial.as_deref(), Some("A702TB52A"));
        assert_eq!(ft232.interface, Some(0));
        // The selector Linux prints finds it; so does the serial Windows shows.
        assert_eq!(paths("usb:0403:6001:A702TB52", &windows), ["COM3"]);
        assert_eq!(paths("usb:0403:6001:A702TB52A", &windows), ["COM3"]);
        assert_eq!(paths("usb:0403:6001:a702tb52/0", &windows), ["COM3"]);
        assert_eq!(paths("usb:0403:6010:FT4ZS6I3", &windows), ["COM7", "COM8"]);
        assert_eq!(paths("usb:0403:6010:FT4ZS6I3/1", &windows), ["COM8"]);
        assert_eq!(paths("usb:0403:6010:FT4ZS6I3B", &windows), ["COM8"]);
        let printed: Vec<String> = windows
            .iter()
            .map(|port| selector_for(port, &windows).unwrap().to_string())
            .collect();
        assert_eq!(
            printed,
            [
                "usb:0403:6001:A702TB52",
                "usb:0403:6010:FT4ZS6I3/0",
                "usb:0403:6010:FT4ZS6I3/1"
            ]
        );
        // Elsewhere the serial is the device's own, letter or not.
        let linux = normalise(reported, Os::Linux);
        let Kind::Usb(ft232) = &linux[0].kind else {
            panic!()
        };
        assert_eq!(ft232.serial.as_deref(), Some("A702TB52A"));
        assert_eq!(ft232.interface, None);
        // Other vendors keep their last letter on Windows too.
        let other = normalise(vec![usb("COM5", 0x2341, 0x43, Some("ABCD"))], Os::Windows);
        let Kind::Usb(uno) = &other[0].kind else {
            panic!()
        };
        assert_eq!(uno.serial.as_deref(), Some("ABCD"));
    }

    #[test]
    fn windows_invented_serials_are_no_serial() {
        let windows = normalise(
            vec![
                // serialport's reading of USB\VID_1A86&PID_7523\5&2B3C4D5E&0&3
                usb("COM4", 0x1a86, 0x7523, Some("5")),
                // ...and what a fixed serialport would report.
                usb("COM5", 0x1a86, 0x7523, Some("6&A694CA9&0&0000")),
                usb("COM6", 0x2341, 0x43, Some("85735313233351F0B1E1")),
            ],
            Os::Windows,
        );
        let serials: Vec<Option<&str>> = windows
            .iter()
            .map(|port| match &port.kind {
                Kind::Usb(usb) => usb.serial.as_deref(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(serials, [None, None, Some("85735313233351F0B1E1")]);
        // What Windows showed still matches, if someone typed it.
        assert_eq!(paths("usb:1a86:7523:5", &windows), ["COM4"]);
        // A one-digit serial elsewhere is real.
        let linux = normalise(
            vec![usb("/dev/ttyUSB0", 0x1a86, 0x7523, Some("5"))],
            Os::Linux,
        );
        assert_eq!(
            selector_for(&linux[0], &linux).unwrap().to_string(),
            "usb:1a86:7523:5"
        );
    }

    #[test]
    fn blank_serials_are_no_serial() {
        let ports = normalise(
            vec![
                usb("/dev/ttyUSB0", 1, 2, Some("   ")),
                usb("/dev/ttyUSB1", 1, 3, Some(" X1 ")),
            ],
            Os::Linux,
        );
        assert_eq!(
            selector_for(&ports[0], &ports).unwrap().to_string(),
            "usb:0001:0002"
        );
        assert_eq!(
            selector_for(&ports[1], &ports).unwrap().to_string(),
            "usb:0001:0003:X1"
        );
    }

    #[test]
    fn macos_dialin_twins_are_not_matched() {
        let ports = normalise(
            vec![
                usb("/dev/cu.usbmodem1101", 0x2341, 0x43, Some("A1")),
                usb("/dev/tty.usbmodem1101", 0x2341, 0x43, Some("A1")),
                usb("/dev/tty.lonely", 0x2341, 0x44, None),
            ],
            Os::MacOs,
        );
        assert_eq!(ports[1].dialin_of.as_deref(), Some("/dev/cu.usbmodem1101"));
        assert_eq!(paths("usb:2341:0043", &ports), ["/dev/cu.usbmodem1101"]);
        assert_eq!(selector_for(&ports[1], &ports), None);
        // A tty.* without a cu.* twin is matched as it is.
        assert_eq!(paths("usb:2341:0044", &ports), ["/dev/tty.lonely"]);
    }

    #[test]
    fn every_offered_selector_picks_its_port() {
        let ports = normalise(
            vec![
                with(
                    usb("/dev/ttyACM0", 0x2341, 0x43, Some("A1")),
                    Some("1-1"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM1", 0x2341, 0x43, Some("A1")),
                    Some("1-2"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM2", 0x2341, 0x43, None),
                    Some("1-3"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyACM3", 0x2341, 0x43, None),
                    Some("1-4"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB0", FTDI, 0x6010, Some("F1")),
                    Some("2-1"),
                    Some(0),
                ),
                with(
                    usb("/dev/ttyUSB1", FTDI, 0x6010, Some("F1")),
                    Some("2-1"),
                    Some(1),
                ),
            ],
            Os::Linux,
        );
        for port in &ports {
            let selector = selector_for(port, &ports).expect("a selector");
            let reparsed: Selector = selector.to_string().parse().unwrap();
            assert_eq!(
                pick(&reparsed, &ports).unwrap().path,
                port.path,
                "{selector}"
            );
        }
    }

    #[test]
    fn serialport_descriptions_convert() {
        use serialport::{SerialPortInfo, SerialPortType, UsbPortInfo};
        let info = SerialPortInfo {
            port_name: "COM3".into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid: FTDI,
                pid: 0x6001,
                serial_number: Some("A702TB52A".into()),
                manufacturer: Some("FTDI".into()),
                product: None,
                location: Some("PCIROOT(0)#PCI(1400)#USBROOT(0)-1.2".parse().unwrap()),
                interface: None,
            }),
        };
        let ports = normalise(vec![from_serialport(info)], Os::Windows);
        let Kind::Usb(usb) = &ports[0].kind else {
            panic!()
        };
        assert_eq!(
            usb.location.as_deref(),
            Some("PCIROOT(0)#PCI(1400)#USBROOT(0)-1.2")
        );
        assert_eq!(usb.serial.as_deref(), Some("A702TB52"));
        assert_eq!(usb.manufacturer.as_deref(), Some("FTDI"));
        let pci = SerialPortInfo {
            port_name: "COM1".into(),
            port_type: SerialPortType::PciPort,
        };
        assert_eq!(from_serialport(pci).kind, Kind::Pci);
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
