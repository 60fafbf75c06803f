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
//! - **Messages** ([`Messages`]: `tcp-listen://`, `ws://`, `ws-listen://`, `mqtt://`): the endpoint runs its own
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
//! | `usb:2341:0043[:SERIAL],baud=115200` | the USB serial device so named, [`usb`] |
//! | `tcp://HOST:PORT`, `socket://HOST:PORT` | TCP client, [`tcp`] |
//! | `tcp-listen://[ADDR:]PORT` | TCP server for line clients, [`listen`] |
//! | `ws://HOST:PORT[/PATH]` | WebSocket client, [`ws`] |
//! | `ws-listen://[ADDR:]PORT` | WebSocket server with a console page, [`ws`] |
//! | `mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER` | MQTT client, [`mqtt`] |
//! | `-` | stdin and stdout, [`stdio`] |
//! | `pty`, `pty:LINK` | a new pseudo-terminal, [`pty`] (Unix) |

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use crate::framing::{Batch, Framing};

pub mod listen;
pub mod mqtt;
#[cfg(unix)]
pub mod pty;
pub mod serial;
mod spec;
pub mod stdio;
pub mod tcp;
pub mod usb;
pub mod ws;

pub use spec::Spec;

/// The longest time any option or setting may name (`--flush-after`, `--settle`,
/// `settle=`, `--stats`): a day is more than any of them needs, and it keeps every
/// deadline far from overflowing.
pub const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// What opening an endpoint needs from the rest of the configuration.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// How lines are framed: message endpoints strip and add delimiters.
    pub framing: Framing,
    /// How many clients a listening endpoint serves at once; `None` leaves it to the
    /// endpoint (one for `tcp-listen://`, several browser tabs for `ws-listen://`).
    pub max_clients: Option<usize>,
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
    /// A second way out that never waits: it takes what fits now, and can wait for
    /// room ([`SendNow::wait_ready`]). `None` where the OS offers no such write.
    pub writer_now: Option<Box<dyn SendNow>>,
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
    /// A message from the source ended here: unless the bytes fed since the last
    /// message already end with the delimiter, the delimiter is added, so each message
    /// is one line (raw framing adds nothing). Returns false as [`Inlet::feed`] does.
    fn end_line(&mut self) -> bool;
    /// One whole message from the source, passed on as one line: `feed`, then
    /// `end_line`. A message longer than `--max-line` goes on in pieces, as a long line
    /// does; one holding the delimiter becomes several lines.
    fn message(&mut self, data: &[u8]) -> bool {
        self.feed(data) && self.end_line()
    }
    /// Forgets what was fed since the last complete line: a message that never ended
    /// (its peer vanished in the middle of it) is not a message.
    fn drop_partial(&mut self);
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

    /// Called once the bridge hands over nothing more: waits until what was handed
    /// over is out (a listener's clients have written their queues), or until
    /// `abandon` is set because the bridge can wait no longer.
    fn finish(&mut self, abandon: &std::sync::atomic::AtomicBool) {
        let _ = abandon;
    }
}

/// A way out that never waits, used by a reader on the fast path.
pub trait SendNow: Send {
    /// Takes what fits now from the front of `batch`: bytes for a byte stream, whole
    /// pieces for messages. Errors are not reported here; the writer meets them again.
    fn send_now(&mut self, batch: &Batch) -> Taken;

    /// Waits until the destination may take more, for at most `timeout`: `Ok(true)`
    /// when it may, `Ok(false)` when the time is up. An error means it cannot wait (the
    /// default) or the destination failed; either way the rest takes the queued route.
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<bool> {
        let _ = timeout;
        Err(io::ErrorKind::Unsupported.into())
    }
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
impl SendNow for WriteNow {
    /// Writes what fits now; an error ends the attempt quietly (the writer meets it
    /// again and reports it).
    fn send_now(&mut self, batch: &Batch) -> Taken {
        let mut data = batch.bytes();
        let total = data.len();
        while !data.is_empty() {
            match self.write(data) {
                Ok(0) => break,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Taken {
            bytes: total - data.len(),
            dropped: Dropped::default(),
        }
    }

    /// `poll` for room to write. A hang-up or an error on the descriptor is an error.
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: polls one pollfd that lives on this stack for the whole call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        match n {
            0 => Ok(false),
            1.. if fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            1.. => Ok(true),
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(e),
                }
            }
        }
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
