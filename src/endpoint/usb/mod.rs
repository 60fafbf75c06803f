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
//! - [`matching`] and [`pick()`] (`pick.rs`): which present ports a selector names, and
//!   the one line a user sees when it names none or several. Never one at random.
//! - [`selector_for`] (`pick.rs`): the shortest selector that names exactly one
//!   present port, which `--list` prints ([`list`], text and JSON) and the "several
//!   match" message offers.
//!
//! Enumeration: on Linux [`sysfs`] reads `/sys/class/tty` itself, because serialport's
//! enumerator without libudev panics when that directory is missing and skips a USB
//! port whose location cannot be read; here the first is an error and the second is
//! listed without a location, with a warning. Elsewhere serialport enumerates.

pub mod list;
mod pick;
mod port;
mod scan;
mod selector;
#[cfg(target_os = "linux")]
pub mod sysfs;

pub use pick::{Unpicked, is_ambiguous, matching, pick, selector_for};
pub use port::{Kind, Os, Port, Scan, Usb, normalise};
pub use scan::{resolve, scan};
pub use selector::{PREFIX, Selector, is_selector};

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
