//! Endpoints: what the user names on the command line, and the one contract every open
//! endpoint keeps with the bridge.
//!
//! A [`Spec`] is configuration: parsed from a positional argument, shown in messages,
//! compared to catch the same endpoint given twice. [`Spec::open`] turns it into an
//! [`Endpoint`], which comes in one of two shapes, chosen by the endpoint:
//!
//! - **A byte stream** ([`Stream`]: serial ports, `tcp://`, stdio, pty): plain `std::io`
//!   read and write halves, as serialport's own `SerialPort: Read + Write` is. The bridge
//!   runs a reader thread on the read half and frames what it reads. An optional second
//!   write half never waits; with it the bridge writes lines straight from the other
//!   side's reader when nothing is queued (the fast path).
//! - **Messages** ([`Messages`]: `tcp-listen://` today): the endpoint runs its own
//!   threads (one per client, or one that owns a socket which cannot be shared) and
//!   hands whatever they receive to an [`Inbox`] the bridge gives it. Each source it
//!   opens there (a client) is framed by the bridge's framer and handed over with the
//!   bridge's counted protocol, exactly as a byte stream's reader is: one pipeline, one
//!   ordering guarantee. Pieces for the endpoint go out through its [`Outbox`].
//!
//! What else differs between kinds is a property of the [`Spec`]: whether EOF is a
//! normal end ([`Spec::ends_input`], stdin) and how long to hold lines after opening
//! ([`Spec::settle`]). A guard kept until the bridge ends (a pty's link, a listener's
//! threads) comes with the shape.
//!
//! | argument | kind |
//! | --- | --- |
//! | `/dev/ttyACM0,baud=115200`, `COM3` | serial port, [`serial`] |
//! | `tcp://HOST:PORT`, `socket://HOST:PORT` | TCP client, [`tcp`] |
//! | `tcp-listen://[ADDR:]PORT` | TCP server for line clients, [`listen`] |
//! | `mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER` | MQTT client, [`mqtt`] |
//! | `-` | stdin and stdout, [`stdio`] |
//! | `pty`, `pty:LINK` | a new pseudo-terminal, [`pty`] (Unix) |

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;
use crate::framing::{Batch, Framing};

pub mod listen;
pub mod mqtt;
#[cfg(unix)]
pub mod pty;
pub mod serial;
pub mod stdio;
pub mod tcp;

/// One side of the bridge, as the user described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A serial port: a device path (`/dev/ttyACM0`, `COM3`) with its line settings.
    Serial(serial::Settings),
    /// A TCP client connecting to `HOST:PORT`.
    Tcp(String),
    /// A TCP server accepting line clients.
    TcpListen(listen::Listen),
    /// Standard input and output.
    Stdio,
    /// A new pseudo-terminal, optionally reached through a symlink at this path.
    Pty(Option<String>),
    /// A client of an MQTT broker: lines are messages on topics.
    Mqtt(mqtt::Settings),
}

/// The longest time any option or setting may name (`--flush-after`, `--settle`,
/// `settle=`, `--stats`): a day is more than any of them needs, and it keeps every
/// deadline far from overflowing.
pub const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// What opening an endpoint needs from the rest of the configuration.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How lines are framed: message endpoints strip and add delimiters.
    pub framing: Framing,
    /// How many clients a listening endpoint serves at once.
    pub max_clients: usize,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            framing: Framing::default(),
            max_clients: 1,
        }
    }
}

impl Spec {
    /// Fills in settings the user left out from the command-line defaults
    /// (`--baud`, `--settle`).
    pub fn with_defaults(mut self, baud: u32, settle: Option<Duration>) -> Spec {
        if let Spec::Serial(settings) = &mut self {
            settings.baud.get_or_insert(baud);
            if settings.settle.is_none() {
                settings.settle = settle;
            }
        }
        self
    }

    /// How long to hold lines for this endpoint after it opens (`settle=MS`).
    pub fn settle(&self) -> Option<Duration> {
        match self {
            Spec::Serial(settings) => settings.settle.filter(|t| !t.is_zero()),
            _ => None,
        }
    }

    /// The file system path this endpoint names, if any: a serial port's, or a pty's
    /// link.
    pub fn path(&self) -> Option<&str> {
        match self {
            Spec::Serial(settings) => Some(&settings.path),
            Spec::Pty(link) => link.as_deref(),
            _ => None,
        }
    }

    /// Whether EOF from this endpoint is a normal end (stdin), not a failure.
    pub fn ends_input(&self) -> bool {
        matches!(self, Spec::Stdio)
    }

    /// Opens the endpoint, ready to bridge. `interrupted` is asked now and then while
    /// an open waits (a TCP connect); once it says yes the open gives up with
    /// `ErrorKind::Interrupted`.
    pub fn open(
        &self,
        options: &OpenOptions,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Endpoint, Error> {
        let name = self.to_string();
        let shape = match self {
            Spec::Serial(settings) => serial::open(settings),
            Spec::Tcp(addr) => tcp::connect(&name, addr, interrupted),
            Spec::TcpListen(listen) => listen::open(&name, listen, options),
            Spec::Mqtt(settings) => mqtt::open(&name, settings, options, interrupted),
            Spec::Stdio => Ok(stdio::open()),
            #[cfg(unix)]
            Spec::Pty(link) => pty::open(&name, link.as_deref()),
            #[cfg(not(unix))]
            Spec::Pty(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "pseudo-terminals exist on Unix only; use a virtual COM port pair instead",
            )),
        };
        match shape {
            Ok(shape) => Ok(Endpoint { name, shape }),
            Err(source) => Err(Error::Open {
                endpoint: name,
                source,
            }),
        }
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
                "tcp-listen" => listen::parse(text, rest).map(Spec::TcpListen),
                "mqtt" => mqtt::parse(text, rest).map(Spec::Mqtt),
                "mqtts" => Err(format!(
                    "{text}: MQTT over TLS is not supported yet; use mqtt://HOST (port 1883) \
                     on a trusted network"
                )),
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
            Spec::Mqtt(settings) => write!(f, "{settings}"),
        }
    }
}

/// An open endpoint: its name and its shape.
pub struct Endpoint {
    /// How messages name this endpoint.
    pub name: String,
    /// A byte stream or messages.
    pub shape: Shape,
}

/// The two shapes of an open endpoint; see the module documentation.
pub enum Shape {
    /// Read and write halves; the bridge reads and frames.
    Stream(Stream),
    /// An endpoint that runs its own threads and exchanges whole pieces.
    Messages(Box<dyn Messages>),
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match self.shape {
            Shape::Stream(_) => "stream",
            Shape::Messages(_) => "messages",
        };
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("shape", &shape)
            .finish()
    }
}

/// A byte stream's halves, each used by one thread.
pub struct Stream {
    /// Where its bytes come from. EOF (`Ok(0)`) means it closed.
    pub reader: Box<dyn Read + Send>,
    /// Where bytes for it go. A write that times out (`TimedOut` or `WouldBlock`) means
    /// "not accepting data yet"; the bridge logs it once and tries again.
    pub writer: Box<dyn Write + Send>,
    /// A second write half that never waits: a write takes what fits now and fails with
    /// `WouldBlock` if nothing does. `None` where the OS offers no such write.
    pub writer_now: Option<Box<dyn Write + Send>>,
    /// Kept until the bridge ends (or the endpoint is replaced), then dropped.
    pub guard: Option<Box<dyn Send>>,
    /// Which device it is (a terminal's device number), so that the same device named
    /// twice, in whatever way, is refused.
    pub device: Option<u64>,
}

impl Stream {
    /// A stream with these halves and nothing else.
    pub fn new(reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>) -> Stream {
        Stream {
            reader,
            writer,
            writer_now: None,
            guard: None,
            device: None,
        }
    }
}

impl Endpoint {
    /// Which device it is, where it is one.
    pub fn device(&self) -> Option<u64> {
        match &self.shape {
            Shape::Stream(stream) => stream.device,
            Shape::Messages(_) => None,
        }
    }
}

/// The device number of the character device at `path` (following links), if it is one.
pub fn device_of(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path).ok()?;
        meta.file_type().is_char_device().then(|| meta.rdev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// An endpoint that runs its own threads: see the module documentation.
pub trait Messages: Send {
    /// Starts the endpoint's threads. Everything they receive goes to `inbox`; when the
    /// endpoint as a whole ends (a server closed the connection), it drops the inbox and
    /// every inlet it opened, which the bridge takes as "closed". Dropping the returned
    /// [`Running::guard`] must stop every thread the endpoint started from acting (no
    /// more accepting or connecting) and close its connections.
    fn start(self: Box<Self>, inbox: Box<dyn Inbox>) -> io::Result<Running>;
}

/// A started message endpoint.
pub struct Running {
    /// Where the bridge's writer thread puts pieces for the endpoint.
    pub outbox: Box<dyn Outbox>,
    /// A second way in that never waits, for the fast path.
    pub outbox_now: Option<Box<dyn SendNow>>,
    /// Kept until the bridge ends; dropping it stops the endpoint.
    pub guard: Box<dyn Send>,
}

/// Where a message endpoint hands over what its sources send. The bridge implements it.
pub trait Inbox: Send {
    /// A new source of bytes for the other side, such as one client. Its bytes are
    /// framed on their own, so its lines never mix with another source's.
    fn open(&self, name: &str) -> Box<dyn Inlet>;
}

/// One source's way into the bridge. Dropping it ends the source: its partial line, if
/// any, goes on after everything it sent before.
pub trait Inlet: Send {
    /// Bytes read from the source: framed, then passed on. Returns false once the
    /// bridge takes nothing more (it is stopping); the source should end.
    fn feed(&mut self, data: &[u8]) -> bool;
    /// One whole message from the source, passed on as one line: the delimiter is
    /// added (unless framing is raw). Returns false as [`Inlet::feed`] does.
    fn message(&mut self, data: &[u8]) -> bool;
    /// The source failed: what it sent so far goes on, then `error` ends the endpoint.
    fn fail(self: Box<Self>, error: io::Error);
}

/// Where pieces for a message endpoint go, from the bridge's writer thread.
pub trait Outbox: Send {
    /// Sends every piece of `batch`, in order (one message each where the endpoint has
    /// messages). May wait while a single peer catches up; that holds back only this
    /// direction. Returns what reached nobody (no client was connected), or an error
    /// when the endpoint as a whole has failed.
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped>;
}

/// A way out that never waits, used by a reader on the fast path.
pub trait SendNow: Send {
    /// Takes what fits now from the front of `batch`: bytes for a byte stream, whole
    /// pieces for messages. Errors are not reported here; the writer meets them again.
    fn send_now(&mut self, batch: &Batch) -> Taken;
}

/// What [`SendNow::send_now`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Bytes taken from the front of the batch.
    pub bytes: usize,
    /// What of that reached nobody (no client was connected).
    pub dropped: Dropped,
}

/// Whole pieces an endpoint took but could deliver to nobody.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// How many pieces.
    pub pieces: usize,
    /// Their bytes.
    pub bytes: usize,
}

impl Dropped {
    /// All of `batch`.
    pub fn all(batch: &Batch) -> Dropped {
        Dropped {
            pieces: batch.pieces(),
            bytes: batch.bytes().len(),
        }
    }
}

/// Bytes asked of the OS per read: more than a serial port's driver buffer holds, so
/// one read takes everything that is waiting.
pub const READ_BUFFER: usize = 16 * 1024;

/// Reads `reader` into `inlet` until EOF or until the bridge takes no more (`Ok`), or a
/// read fails (`Err`). The one read loop: the bridge's readers and every client of a
/// message endpoint use it.
pub fn pump(reader: &mut dyn Read, inlet: &mut dyn Inlet) -> io::Result<()> {
    let mut buf = vec![0; READ_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !inlet.feed(&buf[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A libc `read`, `write` or `send` result as `io::Result`: negative means errno.
#[cfg(unix)]
pub(crate) fn os_result(n: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A write half that never waits, on a descriptor of its own: a socket is sent to with
/// `MSG_DONTWAIT` (the socket itself stays blocking for the writer thread); any other
/// descriptor must be non-blocking already. Either way a write takes what fits now,
/// or fails with `WouldBlock`.
#[cfg(unix)]
#[derive(Debug)]
pub struct WriteNow {
    fd: std::os::fd::OwnedFd,
    socket: bool,
}

#[cfg(unix)]
impl WriteNow {
    /// For a socket: `send` with `MSG_DONTWAIT | MSG_NOSIGNAL`.
    pub fn socket(fd: std::os::fd::OwnedFd) -> WriteNow {
        WriteNow { fd, socket: true }
    }

    /// For a descriptor already in non-blocking mode, such as a terminal.
    pub fn nonblocking(fd: std::os::fd::OwnedFd) -> WriteNow {
        WriteNow { fd, socket: false }
    }
}

#[cfg(unix)]
impl Write for WriteNow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = self.fd.as_raw_fd();
        let (data, len) = (buf.as_ptr().cast(), buf.len());
        // SAFETY: reads `len` bytes from `buf`, valid for that long, into a descriptor
        // this struct owns.
        os_result(unsafe {
            match self.socket {
                true => libc::send(fd, data, len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL),
                false => libc::write(fd, data, len),
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        let Spec::Mqtt(mqtt) = "mqtt://broker,pub=a,sub=b".parse::<Spec>().unwrap() else {
            panic!("not mqtt");
        };
        assert_eq!(mqtt.address(), "broker:1883");
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "-",
            "pty",
            "pty:/tmp/x",
            "tcp://h:1",
            "tcp-listen://[::1]:80",
            "mqtt://me@broker:1884,pub=lab/uno1,sub=lab/uno2",
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

    #[test]
    fn only_stdin_ends_normally_and_only_serial_settles() {
        assert!(Spec::Stdio.ends_input());
        assert!(!Spec::Pty(None).ends_input());
        let spec: Spec = "/dev/x,settle=20".parse().unwrap();
        assert_eq!(spec.settle(), Some(Duration::from_millis(20)));
        let spec: Spec = "/dev/x,settle=0".parse().unwrap();
        assert_eq!(spec.settle(), None);
        assert_eq!(Spec::Stdio.settle(), None);
    }
}
