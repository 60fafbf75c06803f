//! Linux: the serial ports present, read from sysfs, without panicking or dropping any.
//!
//! serialport's enumerator without libudev does the same walk, but panics when
//! `/sys/class/tty` is missing (a container without sysfs), stops at the first
//! unreadable directory entry, and skips a USB port whose `busnum` or `devpath` cannot
//! be read (with the location feature on). Here the first is an error that says what
//! to check, and the others are warnings: the port is listed with what could be read.
//!
//! For each `/sys/class/tty/NAME` with a `device` link (the rest are virtual
//! terminals), the device's subsystem tells the kind. A USB port's `device` is its
//! interface (`cdc_acm`) or a child of it (`usb-serial` drivers such as `ftdi_sio`);
//! the USB device above that holds `idVendor`, `idProduct`, `serial`, `manufacturer`,
//! `product`, `busnum` and `devpath`. The location is `BUSNUM-DEVPATH` (`1-1.2`), the
//! name Linux gives the device itself.

use std::fs;
use std::io;
use std::path::Path;

use super::port::{Kind, Port, Scan, Usb, lowercase_first};

/// Where Linux lists its terminals.
pub const CLASS_TTY: &str = "/sys/class/tty";

/// Scans `class_tty` (`/sys/class/tty`) for serial ports whose device nodes are in
/// `dev` (`/dev`). Fails only if `class_tty` cannot be read at all.
pub fn scan(class_tty: &Path, dev: &Path) -> Result<Scan, String> {
    let entries = fs::read_dir(class_tty).map_err(|e| {
        format!(
            "cannot list serial ports: {}: {} (is sysfs mounted? `mount -t sysfs sysfs /sys`)",
            class_tty.display(),
            lowercase_first(&e.to_string())
        )
    })?;
    let mut scan = Scan::default();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.warnings.push(format!(
                    "{}: an entry cannot be read: {e}",
                    class_tty.display()
                ));
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = dev.join(&name).to_string_lossy().into_owned();
        let kind = if name.starts_with("rfcomm") {
            Kind::Bluetooth
        } else {
            let device = entry.path().join("device");
            if !device.is_dir() {
                continue; // a virtual terminal or a pty, not a port
            }
            match port_kind(&device, &path, &mut scan.warnings) {
                Some(kind) => kind,
                None => continue,
            }
        };
        if !dev.join(&name).exists() {
            if let Kind::Usb(_) = kind {
                scan.warnings.push(format!(
                    "{path}: a USB serial port in sysfs has no device node there; not listed"
                ));
            }
            continue;
        }
        scan.ports.push(Port {
            path,
            kind,
            dialin_of: None,
        });
    }
    Ok(scan)
}

/// The kind of port whose sysfs `device` link is `device`; `None` for a subsystem
/// that holds no serial ports (as serialport decides).
fn port_kind(device: &Path, path: &str, warnings: &mut Vec<String>) -> Option<Kind> {
    let device = device.canonicalize().ok()?;
    let subsystem = device.join("subsystem").canonicalize().ok()?;
    match subsystem.file_name()?.to_str()? {
        "pci" => Some(Kind::Pci),
        "amba" | "pnp" | "serial-base" => Some(Kind::Other),
        "usb" => Some(usb(&device, path, warnings)),
        "usb-serial" => Some(usb(device.parent()?, path, warnings)),
        _ => None,
    }
}

/// A USB port whose interface directory is `interface`, with what can be read about
/// it. Unreadable IDs make it a port without a selector; an unreadable location, one
/// without a location; each with a warning.
fn usb(interface: &Path, path: &str, warnings: &mut Vec<String>) -> Kind {
    let Some(device) = interface.parent() else {
        warnings.push(format!("{path}: a USB port without a USB device above it"));
        return Kind::Other;
    };
    let ids =
        read_hex(device, "idVendor").and_then(|vid| Ok((vid, read_hex(device, "idProduct")?)));
    let (vid, pid) = match ids {
        Ok((vid, pid)) => (vid, pid),
        Err(why) => {
            warnings.push(format!(
                "{path}: a USB port whose vendor and product IDs cannot be read ({why}); \
                 listed without a selector"
            ));
            return Kind::Other;
        }
    };
    let location = match location(device) {
        Ok(location) => Some(location),
        Err(why) => {
            warnings.push(format!(
                "{path}: its USB location cannot be read ({why}); listed without one"
            ));
            None
        }
    };
    let mut text = |file: &str| match read(device, file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            warnings.push(format!("{path}: cannot read its USB {file}: {e}"));
            None
        }
    };
    let serial = text("serial");
    let manufacturer = text("manufacturer");
    let product = text("product");
    Kind::Usb(Usb {
        manufacturer,
        product,
        location,
        interface: read_hex(interface, "bInterfaceNumber")
            .ok()
            .and_then(|n| u8::try_from(n).ok()),
        ..Usb::reported(vid, pid, serial.as_deref())
    })
}

/// The device's place on the bus: `BUSNUM-DEVPATH`, as in `1-1.2`.
fn location(device: &Path) -> Result<String, String> {
    let bus = read(device, "busnum").map_err(|e| format!("busnum: {e}"))?;
    let bus: u32 = bus
        .parse()
        .map_err(|_| format!("busnum '{bus}' is not a number"))?;
    let ports = read(device, "devpath").map_err(|e| format!("devpath: {e}"))?;
    if ports.split('.').any(|port| port.parse::<u8>().is_err()) {
        return Err(format!("devpath '{ports}' is not a port chain such as 1.2"));
    }
    Ok(format!("{bus}-{ports}"))
}

/// A sysfs attribute, trimmed. Device strings are not always UTF-8; the odd byte
/// becomes U+FFFD rather than losing the whole string.
fn read(dir: &Path, file: &str) -> io::Result<String> {
    let bytes = fs::read(dir.join(file))?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// A sysfs attribute holding a hex number (`idVendor`, `bInterfaceNumber`).
fn read_hex(dir: &Path, file: &str) -> Result<u16, String> {
    let text = read(dir, file).map_err(|e| format!("{file}: {e}"))?;
    u16::from_str_radix(&text, 16).map_err(|_| format!("{file} '{text}' is not hexadecimal"))
}

#[cfg(test)]
mod tests {
    //! A sysfs tree laid out as Linux lays it out (links and all) in a temporary
    //! directory, with the breakage the scan must survive.

    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A temporary sysfs root, removed at the end.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            let root = std::env::temp_dir()
                .join(format!("serial-bridge-sysfs-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for dir in [
                "class/tty",
                "bus/usb",
                "bus/usb-serial",
                "bus/pci",
                "bus/pnp",
                "bus/platform",
                "dev",
            ] {
                fs::create_dir_all(root.join(dir)).unwrap();
            }
            Tree(root)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        /// A tty NAME whose `device` is `device` (under `devices/`), in `subsystem`,
        /// with a node in `dev/`.
        fn tty(&self, name: &str, device: &str, subsystem: &str) {
            let device = self.0.join("devices").join(device);
            fs::create_dir_all(&device).unwrap();
            let _ = symlink(self.0.join("bus").join(subsystem), device.join("subsystem"));
            let class = self.0.join("class/tty").join(name);
            fs::create_dir_all(&class).unwrap();
            symlink(&device, class.join("device")).unwrap();
            fs::write(self.0.join("dev").join(name), "").unwrap();
        }

        /// A USB device at `devices/usb1/LOCATION` with an interface `:1.N`.
        fn usb_device(&self, location: &str, vid: &str, pid: &str, serial: Option<&str>) {
            let device = format!("devices/usb1/{location}");
            self.write(&format!("{device}/idVendor"), &format!("{vid}\n"));
            self.write(&format!("{device}/idProduct"), &format!("{pid}\n"));
            let (bus, ports) = location.split_once('-').unwrap();
            self.write(&format!("{device}/busnum"), &format!("{bus}\n"));
            self.write(&format!("{device}/devpath"), &format!("{ports}\n"));
            self.write(&format!("{device}/product"), "Some Board\n");
            if let Some(serial) = serial {
                self.write(&format!("{device}/serial"), &format!("{serial}\n"));
            }
        }

        fn scan(&self) -> Result<Scan, String> {
            let mut scan = scan(&self.0.join("class/tty"), &self.0.join("dev"))?;
            scan.ports.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(scan)
        }

        fn node(&self, name: &str) -> String {
            self.0.join("dev").join(name).to_string_lossy().into_owned()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn usb_of(port: &Port) -> &Usb {
        match &port.kind {
            Kind::Usb(usb) => usb,
            other => panic!("{}: {other:?}", port.path),
        }
    }

    /// An FTDI adapter (usb-serial) and an Uno (cdc_acm), as Linux shows them.
    fn two_boards(tree: &Tree) {
        tree.usb_device("1-1.2", "0403", "6001", Some("A702TB52"));
        tree.write("devices/usb1/1-1.2/1-1.2:1.0/bInterfaceNumber", "00\n");
        tree.tty("ttyUSB0", "usb1/1-1.2/1-1.2:1.0/ttyUSB0", "usb-serial");
        tree.usb_device("1-3", "2341", "0043", Some("85735313233351F0B1E1"));
        tree.write(
            "devices/usb1/1-3/manufacturer",
            "Arduino (www.arduino.cc)\n",
        );
        tree.write("devices/usb1/1-3/1-3:1.0/bInterfaceNumber", "00\n");
        tree.tty("ttyACM0", "usb1/1-3/1-3:1.0", "usb");
    }

    #[test]
    fn reads_usb_ports_as_linux_lays_them_out() {
        let tree = Tree::new("boards");
        two_boards(&tree);
        tree.tty("ttyS0", "pnp0/00:04", "pnp");
        tree.tty("ttyS1", "platform/serial8250/tty/ttyS1", "platform");
        fs::create_dir_all(tree.0.join("class/tty/tty1")).unwrap(); // no device: virtual
        tree.write("dev/rfcomm0", "");
        fs::create_dir_all(tree.0.join("class/tty/rfcomm0")).unwrap();
        let scan = tree.scan().unwrap();
        assert_eq!(scan.warnings, Vec::<String>::new());
        let paths: Vec<&str> = scan.ports.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                tree.node("rfcomm0"),
                tree.node("ttyACM0"),
                tree.node("ttyS0"),
                tree.node("ttyUSB0")
            ]
        );
        assert_eq!(scan.ports[0].kind, Kind::Bluetooth);
        assert_eq!(scan.ports[2].kind, Kind::Other);
        let uno = usb_of(&scan.ports[1]);
        assert_eq!((uno.vid, uno.pid), (0x2341, 0x0043));
        assert_eq!(uno.reported_serial.as_deref(), Some("85735313233351F0B1E1"));
        assert_eq!(
            uno.manufacturer.as_deref(),
            Some("Arduino (www.arduino.cc)")
        );
        assert_eq!(uno.location.as_deref(), Some("1-3"));
        assert_eq!(uno.interface, Some(0));
        let ftdi = usb_of(&scan.ports[3]);
        assert_eq!((ftdi.vid, ftdi.pid), (0x0403, 0x6001));
        assert_eq!(ftdi.reported_serial.as_deref(), Some("A702TB52"));
        assert_eq!(ftdi.product.as_deref(), Some("Some Board"));
        assert_eq!(ftdi.location.as_deref(), Some("1-1.2"));
    }

    #[test]
    fn a_missing_class_directory_is_an_error_not_a_panic() {
        let tree = Tree::new("nosys");
        let error = scan(&tree.0.join("nothing/here"), &tree.0.join("dev")).unwrap_err();
        assert!(error.starts_with("cannot list serial ports: "), "{error}");
        assert!(error.contains("nothing/here: no such file"), "{error}");
        assert!(error.contains("is sysfs mounted?"), "{error}");
    }

    #[test]
    fn an_unreadable_location_keeps_the_port() {
        let tree = Tree::new("nobus");
        two_boards(&tree);
        // A directory where a file should be: unreadable even for root.
        fs::remove_file(tree.0.join("devices/usb1/1-1.2/busnum")).unwrap();
        fs::create_dir(tree.0.join("devices/usb1/1-1.2/busnum")).unwrap();
        fs::remove_file(tree.0.join("devices/usb1/1-3/devpath")).unwrap();
        let scan = tree.scan().unwrap();
        assert_eq!(scan.ports.len(), 2, "{:?}", scan.ports);
        let ftdi = usb_of(&scan.ports[1]);
        assert_eq!(ftdi.location, None);
        assert_eq!(ftdi.reported_serial.as_deref(), Some("A702TB52"));
        assert_eq!(usb_of(&scan.ports[0]).location, None);
        assert_eq!(scan.warnings.len(), 2, "{:?}", scan.warnings);
        let said = |text: &str| scan.warnings.iter().any(|w| w.contains(text));
        assert!(said("ttyACM0: its USB location cannot be read (devpath: "));
        assert!(said("ttyUSB0: its USB location cannot be read (busnum: "));
        assert!(
            scan.warnings
                .iter()
                .all(|w| w.ends_with("listed without one"))
        );
    }

    #[test]
    fn unreadable_ids_keep_the_port_without_a_selector() {
        let tree = Tree::new("noids");
        two_boards(&tree);
        fs::remove_file(tree.0.join("devices/usb1/1-3/idProduct")).unwrap();
        let scan = tree.scan().unwrap();
        assert_eq!(scan.ports.len(), 2);
        assert_eq!(scan.ports[0].kind, Kind::Other);
        assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
        assert!(scan.warnings[0].contains("vendor and product IDs cannot be read (idProduct: "));
    }

    #[test]
    fn a_port_without_serial_has_none_and_no_warning() {
        let tree = Tree::new("noserial");
        tree.usb_device("3-1.4", "1a86", "7523", None);
        tree.tty("ttyUSB3", "usb1/3-1.4/3-1.4:1.0/ttyUSB3", "usb-serial");
        let scan = tree.scan().unwrap();
        assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
        let ch340 = usb_of(&scan.ports[0]);
        assert_eq!(ch340.reported_serial, None);
        assert_eq!(ch340.location.as_deref(), Some("3-1.4"));
        assert_eq!(ch340.interface, None);
    }

    #[test]
    fn a_usb_port_without_a_device_node_is_reported() {
        let tree = Tree::new("nonode");
        two_boards(&tree);
        fs::remove_file(tree.0.join("dev/ttyACM0")).unwrap();
        let scan = tree.scan().unwrap();
        assert_eq!(scan.ports.len(), 1);
        assert_eq!(scan.warnings.len(), 1);
        assert!(
            scan.warnings[0].contains("ttyACM0: a USB serial port in sysfs has no device node")
        );
    }

    #[test]
    fn this_machine_scans_without_panicking() {
        // Whatever this machine has (CI machines have no USB serial devices).
        if Path::new(CLASS_TTY).is_dir() {
            scan(Path::new(CLASS_TTY), Path::new("/dev")).expect("scan /sys/class/tty");
        }
    }
}
