//! Endpoints: what the user names on the command line, and the open byte streams.
//!
//! A [`Spec`] is configuration: parsed from a positional argument, shown in messages,
//! compared to catch the same endpoint given twice. [`Spec::open`] turns it into an
//! [`Endpoint`]: a name and two plain `std::io` halves, so the bridge never needs to
//! know what kind of thing it is moving bytes between. Adding a kind of endpoint takes
//! one file beside `serial.rs`, one variant here and one arm in each match.
//!
//! | argument | kind |
//! | --- | --- |
//! | `/dev/ttyACM0,baud=115200`, `COM3` | serial port, [`serial`] |
//! | `usb:2341:0043[:SERIAL],baud=115200` | the USB serial device so named, [`usb`] |
//! | `tcp://HOST:PORT`, `socket://HOST:PORT` | TCP client, [`tcp`] |
//! | `tcp-listen://[ADDR:]PORT` | TCP server for line clients, [`tcp`] |
//! | `-` | stdin and stdout, [`stdio`] |
//! | `pty`, `pty:LINK` | a new pseudo-terminal, [`pty`] (Unix) |

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use crate::error::Error;
use crate::framing::{Batch, Framing};

#[cfg(unix)]
pub mod pty;
pub mod serial;
pub mod stdio;
pub mod tcp;
pub mod usb;

/// One side of the bridge, as the user described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A serial port: a device path (`/dev/ttyACM0`, `COM3`) with its line settings.
    Serial(serial::Settings),
    /// A TCP client connecting to `HOST:PORT`.
    Tcp(String),
    /// A TCP server accepting line clients.
    TcpListen(tcp::Listen),
    /// Standard input and output.
    Stdio,
    /// A new pseudo-terminal, optionally reached through a symlink at this path.
    Pty(Option<String>),
}

/// What opening an endpoint needs from the rest of the configuration.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How lines are framed: a multi-client endpoint frames each client's lines.
    pub framing: Framing,
    /// `--flush-after`, for the same reason.
    pub flush_after: Option<std::time::Duration>,
    /// How many clients a listening endpoint serves at once.
    pub max_clients: usize,
}

impl Spec {
    /// Fills in settings the user left out from the command-line defaults
    /// (`--baud`, `--settle`).
    pub fn with_defaults(mut self, baud: u32, settle: Option<std::time::Duration>) -> Spec {
        if let Spec::Serial(settings) = &mut self {
            settings.baud.get_or_insert(baud);
            if settings.settle.is_none() {
                settings.settle = settle;
            }
        }
        self
    }

    /// Opens the endpoint, ready to bridge.
    pub fn open(&self, options: &OpenOptions) -> Result<Endpoint, Error> {
        let name = self.to_string();
        match self {
            Spec::Serial(settings) => serial::open(name, settings),
            Spec::Tcp(addr) => tcp::connect(name, addr),
            Spec::TcpListen(listen) => tcp::listen(name, listen, options),
            Spec::Stdio => Ok(stdio::open(name)),
            #[cfg(unix)]
            Spec::Pty(link) => pty::open(name, link.as_deref()),
            #[cfg(not(unix))]
            Spec::Pty(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "pseudo-terminals exist on Unix only; use a virtual COM port pair instead",
            )),
        }
        .map_err(|source| Error::Open {
            endpoint: self.to_string(),
            source,
        })
    }
}

impl FromStr for Spec {
    type Err = String;

    /// Parses a positional argument. The error says what is wrong with it.
    fn from_str(text: &str) -> Result<Spec, String> {
        if text == "-" {
            return Ok(Spec::Stdio);
        }
        if text == "pty" {
            return Ok(Spec::Pty(None));
        }
        if let Some(link) = text.strip_prefix("pty:") {
            if link.is_empty() {
                return Err(format!("{text}: missing the link path after 'pty:'"));
            }
            return Ok(Spec::Pty(Some(link.to_string())));
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            return match scheme {
                "tcp" | "socket" => tcp::parse_connect(text, rest).map(Spec::Tcp),
                "tcp-listen" => tcp::parse_listen(text, rest).map(Spec::TcpListen),
                _ => Err(format!(
                    "{text}: unknown scheme '{scheme}://'; use tcp://HOST:PORT, \
                     tcp-listen://[ADDR:]PORT, -, pty, or a serial port path"
                )),
            };
        }
        serial::Settings::from_str(text).map(Spec::Serial)
    }
}

impl fmt::Display for Spec {
    /// The name used in every message about this endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Serial(settings) => f.write_str(&settings.path),
            Spec::Tcp(addr) => write!(f, "tcp://{addr}"),
            Spec::TcpListen(listen) => write!(f, "tcp-listen://{}", listen.addr),
            Spec::Stdio => f.write_str("-"),
            Spec::Pty(None) => f.write_str("pty"),
            Spec::Pty(Some(link)) => write!(f, "pty:{link}"),
        }
    }
}

/// An open endpoint: its name and its two halves, each used by one thread.
pub struct Endpoint {
    /// How messages name this endpoint.
    pub name: String,
    /// Where its bytes come from. EOF (`Ok(0)`) means it closed.
    pub reader: Box<dyn Read + Send>,
    /// Where bytes for it go.
    pub writer: Box<dyn Write + Send>,
    /// A second write half that never waits: a write takes what fits now and fails
    /// with `WouldBlock` (or `TimedOut`) if nothing does. With it, the bridge writes a
    /// line straight from the reader when nothing is queued for this endpoint, saving
    /// two thread wake-ups per line. `None` where the OS offers no such write.
    pub writer_now: Option<Box<dyn Write + Send>>,
    /// Each read already yields whole pieces (lines gathered from several clients),
    /// so the bridge must not frame them again.
    pub framed: bool,
    /// EOF from `reader` is a normal end (stdin), not a failure.
    pub eof_is_end: bool,
    /// At shutdown, the pieces this endpoint has read but not yet handed to `reader`.
    pub leftovers: Option<Box<dyn FnMut() -> Batch + Send>>,
    /// Kept until the bridge ends, then dropped (a pty's symlink is removed then).
    pub guard: Option<Box<dyn Send>>,
    /// After opening, hold lines for this endpoint this long (`settle=MS`).
    pub settle: Option<std::time::Duration>,
}

impl Endpoint {
    /// An endpoint with plain halves and the usual behaviour: framed by the bridge,
    /// EOF a failure, nothing held back.
    pub fn new(
        name: String,
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
    ) -> Endpoint {
        Endpoint {
            name,
            reader,
            writer,
            writer_now: None,
            framed: false,
            eof_is_end: false,
            leftovers: None,
            guard: None,
            settle: None,
        }
    }
}

/// A libc `read`, `write` or `send` result as `io::Result`: negative means errno.
#[cfg(unix)]
pub(crate) fn os_result(n: libc::ssize_t) -> std::io::Result<usize> {
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses() {
        assert_eq!("-".parse::<Spec>().unwrap(), Spec::Stdio);
        assert_eq!("pty".parse::<Spec>().unwrap(), Spec::Pty(None));
        assert_eq!(
            "pty:/tmp/ttyV0".parse::<Spec>().unwrap(),
            Spec::Pty(Some("/tmp/ttyV0".into()))
        );
        assert_eq!(
            "tcp://localhost:5000".parse::<Spec>().unwrap(),
            Spec::Tcp("localhost:5000".into())
        );
        assert_eq!(
            "socket://10.0.0.2:7".parse::<Spec>().unwrap(),
            Spec::Tcp("10.0.0.2:7".into())
        );
        let Spec::TcpListen(listen) = "tcp-listen://5000".parse::<Spec>().unwrap() else {
            panic!("not a listener");
        };
        assert_eq!(listen.addr.to_string(), "127.0.0.1:5000");
        let Spec::TcpListen(listen) = "tcp-listen://0.0.0.0:5000".parse::<Spec>().unwrap() else {
            panic!("not a listener");
        };
        assert_eq!(listen.addr.to_string(), "0.0.0.0:5000");
        assert!(matches!(
            "/dev/ttyS0".parse::<Spec>().unwrap(),
            Spec::Serial(_)
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "-",
            "pty",
            "pty:/tmp/x",
            "tcp://h:1",
            "tcp-listen://[::1]:80",
            "COM3",
        ] {
            assert_eq!(text.parse::<Spec>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (text, why) in [
            ("ws://host:1", "unknown scheme 'ws://'"),
            ("tcp://host", "expected tcp://HOST:PORT"),
            ("tcp://host:http", "port must be a number"),
            ("tcp://:80", "missing host"),
            ("tcp-listen://x:y", "port must be a number"),
            ("tcp-listen://nosuch:80", "an IP address"),
            ("pty:", "missing the link path"),
        ] {
            let error = text.parse::<Spec>().unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
