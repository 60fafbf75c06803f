//! Enumerating the ports present, and resolving a selector to one of them.

use std::io;

use super::pick::pick;
#[cfg(not(target_os = "linux"))]
use super::port::lowercase_first;
#[cfg(any(not(target_os = "linux"), test))]
use super::port::{Kind, Port, Usb};
use super::port::{Os, Scan, normalise};
use super::selector::Selector;
#[cfg(target_os = "linux")]
use super::sysfs;

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
    use super::super::port::FTDI;
    use super::super::{Kind, Os, normalise};
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
