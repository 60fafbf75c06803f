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
//! descriptions as each OS reports them. One file each:
//!
//! - [`Selector`] (`selector.rs`): parsing and display. VID and PID are hex in either
//!   case; a serial or location holding a character that would end the selector
//!   (`,` `@` `/` `%`) or trouble a shell is written `%XX`, as `--list` prints it.
//! - [`normalise`] (`port.rs`): what the OSes get wrong, put right where it is known
//!   (Windows: FTDI's channel letter, invented serials; macOS: the dial-in twin of
//!   each port).
//! - [`matching`] and [`pick`] (`pick.rs`): which present ports a selector names, and
//!   the one line a user sees when it names none or several. Never one at random.
//! - [`selector_for`] (`pick.rs`): the shortest selector that names exactly one
//!   present port, which `--list` prints ([`list`], text and JSON) and the "several
//!   match" message offers.
//!
//! Enumeration: on Linux [`sysfs`] reads `/sys/class/tty` itself, because serialport's
//! enumerator without libudev panics when that directory is missing and skips a USB
//! port whose location cannot be read; here the first is an error and the second is
//! listed without a location, with a warning. Elsewhere serialport enumerates.

use std::io;

pub mod list;
mod pick;
mod port;
mod selector;
#[cfg(target_os = "linux")]
pub mod sysfs;

pub use pick::{Unpicked, is_ambiguous, matching, pick, selector_for};
pub use port::{Kind, Os, Port, Usb, normalise};
pub use selector::{PREFIX, Selector, is_selector};

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

/// Port lists and selectors for the tests of every part.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn selector(text: &str) -> Selector {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    pub fn usb(path: &str, vid: u16, pid: u16, serial: Option<&str>) -> Port {
        Port {
            path: path.into(),
            kind: Kind::Usb(Usb::reported(vid, pid, serial)),
            dialin_of: None,
        }
    }

    pub fn with(mut port: Port, location: Option<&str>, interface: Option<u8>) -> Port {
        if let Kind::Usb(usb) = &mut port.kind {
            usb.location = location.map(str::to_string);
            usb.interface = interface;
        }
        port
    }

    /// The paths `text` matches among `ports`.
    pub fn paths(text: &str, ports: &[Port]) -> Vec<String> {
        matching(&selector(text), ports)
            .iter()
            .map(|port| port.path.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::port::FTDI;
    use super::*;

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
}
