//! Which present ports a selector names, and what the user reads when it is not
//! exactly one: the matcher, the shortest selector for each port, and the messages.
//! Pure functions over port lists; never one port at random.

use std::fmt;
use std::io;

use super::port::{Kind, Port, Usb};
use super::selector::Selector;

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
pub fn is_ambiguous(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Unpicked>())
        .is_some_and(|why| matches!(why, Unpicked::Several(_)))
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{paths, selector, usb, with};
    use super::super::port::FTDI;
    use super::super::{Os, normalise};
    use super::*;
    use std::io;

    /// Two Arduino Unos told apart by serial and location, and a CH340 without one.
    fn two_unos_and_a_ch340() -> Vec<Port> {
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
        ]
    }

    #[test]
    fn matches_by_id_serial_location_and_interface() {
        let mut ports = two_unos_and_a_ch340();
        ports.push(Port {
            path: "/dev/ttyS0".into(),
            kind: Kind::Other,
            dialin_of: None,
        });
        let ports = normalise(ports, Os::Linux);
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
        let ports = normalise(two_unos_and_a_ch340(), Os::Linux);
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
        let several = io::Error::other(Unpicked::Several("2 USB serial devices match".into()));
        assert!(is_ambiguous(&several));
        assert_eq!(
            crate::error::describe(&several),
            "2 USB serial devices match"
        );
        assert!(!is_ambiguous(&io::Error::other(Unpicked::Absent(
            "none".into()
        ))));
        assert!(!is_ambiguous(&io::ErrorKind::NotFound.into()));
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
}
