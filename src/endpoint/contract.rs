//! The contract between the bridge and every kind of endpoint, and nothing else: the
//! types a kind implements or returns, in the order the bridge meets them.
//!
//! 1. [`Kind`]: what the user named, parsed (a port and its settings, an address).
//!    It is opened with an [`Opening`] into an [`Endpoint`].
//! 2. [`Endpoint`]: open, not yet moving data. Its name, its properties (whether its
//!    end of input is a normal end, how long to hold lines after opening, the device it
//!    holds) and how to start it ([`Start`]).
//! 3. [`Start::start`] gets an [`Inbox`] and returns [`Running`]: the endpoint's
//!    threads now hand what they read to inlets opened from the inbox (one per source:
//!    a byte stream's reader, each client of a server), and the bridge writes to it
//!    through its [`Outbox`] (and, when nothing is queued, its [`Direct`] way out).
//! 4. [`Stop::stop`] with a deadline ends it.
//!
//! A byte stream (a port, a socket) need not implement any of this itself:
//! [`super::stream::Stream`] adapts any `Read` and `Write` halves.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::control::{Control, ControlLink};
use crate::framing::{Batch, Framing};

/// A kind of endpoint, as parsed from its argument: configuration, shared and compared,
/// opened as often as `--reconnect` needs.
pub trait Kind: fmt::Debug + Send + Sync + 'static {
    /// The name every message about the endpoint uses: the argument as the user wrote
    /// it, without settings or secrets.
    fn name(&self) -> String;

    /// Opens the endpoint, ready to start. Waits (a connect, a handshake) should give up
    /// with `ErrorKind::Interrupted` once [`Opening::interrupted`] says so.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint>;

    /// Why opening failed, in one lowercase line with the hint that fits this kind
    /// (`no such port (run serial-bridge --list ...)` for a port).
    fn why(&self, error: &io::Error) -> String {
        crate::error::describe(error)
    }

    /// Whether an open failure will not mend by waiting, so that `--reconnect` gives up
    /// at once (a USB selector naming several boards).
    fn lasting(&self, error: &io::Error) -> bool {
        let _ = error;
        false
    }

    /// Where the endpoint is, for the checks on the command line.
    fn place(&self) -> Place {
        Place::Named
    }

    /// Refuses a pairing with `other` that cannot work (two MQTT endpoints that would
    /// send every line round for ever); the message names the endpoint and says why.
    fn check_pair(&self, other: &dyn Kind) -> Result<(), String> {
        let _ = other;
        Ok(())
    }

    /// Whether, bridged with `others`, it carries a byte stream that lines must not cut
    /// (a remote serial port: esptool's frames, Modbus, firmware). If any endpoint says
    /// so, the bridge forwards bytes as they arrive, as `--raw` does, unless the
    /// command line frames lines itself (`--delimiter`, `--max-line`, `--flush-after`).
    fn bytes(&self, others: &[&dyn Kind]) -> bool {
        let _ = others;
        false
    }

    /// Itself, to compare with another endpoint of the same kind in [`Kind::check_pair`].
    fn as_any(&self) -> &dyn Any;
}

/// Where an endpoint is, so that the same one named twice (or a log file that is one of
/// them) is refused before anything opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file: a port's path, a pty's link. Compared by where links lead.
    Path(String),
    /// Standard input and output.
    Stdio,
    /// An address or other name, compared as written.
    Named,
    /// A port listened on (`udp`: a UDP one; else TCP): the same as another on that
    /// port of the same protocol, at the same address or where either is every
    /// address (`0.0.0.0`, `::`), however each is written.
    Listening {
        /// UDP rather than TCP.
        udp: bool,
        /// Where.
        addr: std::net::SocketAddr,
    },
    /// Something new each time (a pty without a link, a listener on port 0): never the
    /// same as another.
    New,
}

/// Settings for opening that come from the command line rather than the argument.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// How lines are framed: message endpoints strip and add delimiters.
    pub framing: Framing,
    /// How many clients a server serves at once; `None` leaves it to the endpoint.
    pub max_clients: Option<usize>,
    /// The baud rate of a port that sets none (`--baud`).
    pub baud: u32,
    /// How long to hold lines for a port after it opens, where it sets none (`--settle`).
    pub settle: Option<Duration>,
    /// How long a serial port's reader lets lines gather while the port is busy
    /// (`--coalesce`; zero: never).
    pub coalesce: Duration,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            framing: Framing::default(),
            max_clients: None,
            baud: DEFAULT_BAUD,
            settle: None,
            coalesce: Duration::ZERO,
        }
    }
}

/// The baud rate for ports that set none: what Arduino sketches start with.
pub const DEFAULT_BAUD: u32 = 9600;

/// What [`Kind::open`] is given.
pub struct Opening<'a> {
    /// The endpoint's name ([`Kind::name`]), for log lines.
    pub name: &'a str,
    /// The command line's settings.
    pub defaults: &'a Defaults,
    interrupted: &'a dyn Fn() -> bool,
}

impl<'a> Opening<'a> {
    /// Opening `name` with `defaults`; `interrupted` says when to give up waiting.
    pub fn new(
        name: &'a str,
        defaults: &'a Defaults,
        interrupted: &'a dyn Fn() -> bool,
    ) -> Opening<'a> {
        Opening {
            name,
            defaults,
            interrupted,
        }
    }

    /// Whether the bridge is stopping: an open that waits should give up.
    pub fn interrupted(&self) -> bool {
        (self.interrupted)()
    }

    /// The same as a closure, for helpers that take one.
    pub fn interrupt(&self) -> &'a dyn Fn() -> bool {
        self.interrupted
    }
}

/// An open endpoint: its name, its properties and how to start it.
pub struct Endpoint {
    name: String,
    start: Box<dyn Start>,
    ends_input: bool,
    settle: Option<Duration>,
    device: Option<u64>,
    control: Option<Arc<dyn Control>>,
}

impl Endpoint {
    /// The endpoint `name`, started by `start`: its end of input is a failure, it needs
    /// no time to settle and holds no device, unless the methods below say otherwise.
    pub fn new(name: &str, start: impl Start + 'static) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            start: Box::new(start),
            ends_input: false,
            settle: None,
            device: None,
            control: None,
        }
    }

    /// Its end of input is a normal end (stdin), not a failure.
    pub fn ending_input(mut self) -> Endpoint {
        self.ends_input = true;
        self
    }

    /// Lines for it wait this long after it opens (a board's bootloader).
    pub fn settling(mut self, time: Option<Duration>) -> Endpoint {
        self.settle = time.filter(|t| !t.is_zero());
        self
    }

    /// It holds this device (a terminal's device number), so the same device named twice
    /// in whatever way is refused.
    pub fn holding(mut self, device: Option<u64>) -> Endpoint {
        self.device = device;
        self
    }

    /// It is a serial port with these controls, offered to the endpoint across the
    /// bridge (see [`super::control`]).
    pub fn controlled_by(mut self, control: Arc<dyn Control>) -> Endpoint {
        self.control = Some(control);
        self
    }

    /// Its controls, if it is a serial port.
    pub fn control(&self) -> Option<Arc<dyn Control>> {
        self.control.clone()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its end of input is a normal end.
    pub fn ends_input(&self) -> bool {
        self.ends_input
    }

    /// How long lines for it wait after it opens.
    pub fn settle(&self) -> Option<Duration> {
        self.settle
    }

    /// The device it holds, if it is one.
    pub fn device(&self) -> Option<u64> {
        self.device
    }

    /// Starts its threads: see [`Start`].
    pub fn start(self, inbox: Box<dyn Inbox>, give_up: GiveUp) -> io::Result<Running> {
        self.start.start(&self.name, inbox, give_up)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("ends_input", &self.ends_input)
            .field("settle", &self.settle)
            .field("device", &self.device)
            .finish()
    }
}

/// How an open endpoint starts moving data.
pub trait Start: Send {
    /// Starts the threads of the endpoint `name`. Each source of data (a byte stream's
    /// reader, each client or connection) opens an inlet from `inbox` and hands it what
    /// it reads.
    /// When the endpoint as a whole ends (its input ended, a server closed the
    /// connection) it drops the inbox and every inlet, which the bridge takes as
    /// "closed". `give_up` is set at a stop once the bridge can wait no longer: a write
    /// that waits for a stuck peer should then fail.
    fn start(
        self: Box<Self>,
        name: &str,
        inbox: Box<dyn Inbox>,
        give_up: GiveUp,
    ) -> io::Result<Running>;
}

/// A started endpoint: the ways out, and how to stop it.
pub struct Running {
    /// Where the bridge's writer thread puts pieces for it.
    pub outbox: Box<dyn Outbox>,
    /// A way out that never waits, for the direct route; `None` where there is none.
    pub direct: Option<Box<dyn Direct>>,
    /// Ends it.
    pub stop: Box<dyn Stop>,
}

/// Ends a started endpoint.
pub trait Stop: Send {
    /// Stops every thread the endpoint started from acting (no accepting, connecting or
    /// writing), says goodbye where its protocol has one, and closes what it opened, all
    /// by `deadline`. Readers blocked in `read` may remain, holding nothing that acts.
    fn stop(self: Box<Self>, deadline: Instant);
}

/// Nothing to stop but what dropping does.
impl<T: Send> Stop for Option<T> {
    fn stop(self: Box<Self>, _: Instant) {}
}

/// Set at a stop once the bridge can wait no longer: a writer stuck on a peer gives up.
#[derive(Debug, Clone, Default)]
pub struct GiveUp(Arc<AtomicBool>);

impl GiveUp {
    /// Whether to give up now.
    pub fn now(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Gives up, everywhere this was cloned to.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where an endpoint opens inlets, one per source. The bridge implements it.
pub trait Inbox: Send {
    /// A new source of bytes for the other side, such as one client. Its bytes are
    /// framed on their own, so its lines never mix with another source's.
    fn open(&self, name: &str) -> Box<dyn Inlet>;

    /// A source among others that come and go (a client of a server): as
    /// [`Inbox::open`], but if it ends in the middle of a line, the bridge ends the line
    /// there (adds the delimiter, counted as cut short), so that the next source's line
    /// does not join it.
    fn open_client(&self, name: &str) -> Box<dyn Inlet> {
        self.open(name)
    }

    /// The serial port across the bridge (in a hub, the device, for each peer), for an
    /// endpoint that serves it to others: see [`super::control`].
    fn control(&self) -> ControlLink {
        ControlLink::default()
    }

    /// The name of the endpoint across the bridge, where this endpoint's lines go (in
    /// a hub, the device, for each peer; none for the device itself): for a page that
    /// names its board.
    fn across(&self) -> Option<String> {
        None
    }
}

/// One source's way into the bridge. Dropping it ends the source: its partial line, if
/// any, goes on after everything it handed on before.
pub trait Inlet: Send {
    /// Bytes read from the source: framed, then handed on. Returns false once the
    /// bridge takes nothing more (it is stopping); the source should end.
    fn feed(&mut self, data: &[u8]) -> bool;
    /// A message from the source ended here: unless the bytes fed since the last
    /// message already end with the delimiter, the delimiter is added, so each message
    /// is one line (raw framing adds nothing). Returns false as [`Inlet::feed`] does.
    fn end_line(&mut self) -> bool;
    /// One whole message from the source, handed on as one line: `feed`, then
    /// `end_line`. A message longer than `--max-line` goes on in pieces, as a long line
    /// does; one holding the delimiter becomes several lines.
    fn message(&mut self, data: &[u8]) -> bool {
        self.feed(data) && self.end_line()
    }
    /// Bytes from the source that go on now, exactly as they are: `feed`, and then
    /// what is left of a line is handed on at once, as `--flush-after` hands on a
    /// partial line after a silence. For a source whose messages are exactly the bytes
    /// the other side should get (the console page, which adds the line ending its user
    /// chose): what it sends is whole as sent, so a message without a line end holds
    /// no other source back, and nothing is added to it when the source leaves.
    /// Returns false as [`Inlet::feed`] does.
    fn feed_now(&mut self, data: &[u8]) -> bool;
    /// `count` messages from the source were lost before it could read them (datagrams
    /// the kernel dropped with its receive buffer full): counted as dropped in this
    /// direction, as lines that reached nobody are in the other.
    fn missed(&mut self, count: u64);
    /// A message was cut off (its peer vanished in the middle of it): what was fed
    /// since the last complete line is forgotten, a message that never ended not being
    /// a message; but if pieces of it went on already (it was longer than
    /// `--max-line`), the bridge ends the line there instead (counted as cut short), so
    /// the next message does not join it.
    fn drop_partial(&mut self);
    /// The source failed: what it handed on so far goes on, then `error` ends the
    /// endpoint.
    fn fail(self: Box<Self>, error: io::Error);
}

/// Where the bridge's writer thread puts pieces for an endpoint.
pub trait Outbox: Send {
    /// Sends every piece of `batch`, in order (one message each where the endpoint has
    /// messages). May wait while the peer catches up; that holds back only this
    /// direction. Returns what reached nobody (no client was connected), or an error
    /// when the endpoint as a whole has failed.
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped>;

    /// Pieces of earlier batches that [`Outbox::send`] or [`Direct::try_send`]
    /// counted as taken, and that reached nobody after all (a server's client dropped
    /// with them still queued); each reported once. The bridge asks after each send and
    /// after [`Outbox::finish`].
    fn retracted(&mut self) -> Dropped {
        Dropped::default()
    }

    /// Called once the bridge hands over nothing more: waits until what was handed
    /// over is out (a server's clients have written their queues), or until `give_up`
    /// is set.
    fn finish(&mut self, give_up: &GiveUp) {
        let _ = give_up;
    }
}

/// A way out that never waits, used on the direct route: a source writes its batch
/// itself when nothing is queued for the endpoint.
pub trait Direct: Send {
    /// Takes what fits now from the front of `batch`: bytes for a byte stream, whole
    /// pieces for messages. Errors are not reported here; the writer meets them again.
    fn try_send(&mut self, batch: &Batch) -> Taken;

    /// Waits until the endpoint may take more, for at most `timeout`: `Ok(true)` when
    /// it may, `Ok(false)` when the time is up. An error means it cannot wait (the
    /// default) or the endpoint failed; either way the rest takes the queued route.
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<bool> {
        let _ = timeout;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// What [`Direct::try_send`] took.
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
