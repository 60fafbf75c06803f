//! Ports as enumeration describes them, and what each OS gets wrong put right.
//!
//! [`normalise`] is where the OS quirks live, so that a selector copied from
//! `--list` on one OS finds the same device on another; the README lists what it
//! cannot put right.

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
pub(super) const FTDI: u16 = 0x0403;

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

/// The ports present, and anything odd seen while looking, one line each.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every serial port found, sorted by path.
    pub ports: Vec<Port>,
    /// Ports listed with less than the OS knows, and why.
    pub warnings: Vec<String>,
}

/// System messages start with a capital ("No such file or directory"); ours do not.
pub fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{paths, usb};
    use super::super::selector_for;
    use super::*;

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
}
