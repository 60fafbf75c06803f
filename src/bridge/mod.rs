//! The running bridge: every thread and channel lives here, one room per concern.
//!
//! ```text
//!  A ──read──▶ [reader A] ──batches──▶ ┌────────────┐ ──▶ [writer B] ──write──▶ B
//!      (or A's own threads, one inlet each)  │ dispatcher │
//!  A ◀─write── [writer A] ◀──batches── └────────────┘ ◀──batches── [reader B] ◀──read── B
//!                                            ▲ stop (Ctrl-C, SIGTERM, SIGHUP)
//! ```
//!
//! **Words.** A *line* is bytes up to and including the delimiter. A *piece* is what
//! the framer hands on: a line, the first `--max-line` bytes of an over-long one, a
//! partial line taken at a silence or a stop, or (raw) one read. A *batch* holds the
//! pieces of one read, back to back ([`crate::framing::Batch`]). A *message* is one
//! item on a direction's channel: a batch, the news that a partial line is pending, or
//! the error that ended a source. A *direction* is named by the side it reads from:
//! direction A carries A's lines to B. A *source* is one stream of bytes feeding a
//! direction: a byte stream's reader, or one client of a message endpoint.
//!
//! **Rooms.**
//! - [`reader`]: sources. Each frames what it reads and hands the pieces on, counted,
//!   through the direction's [`lane`]. Byte streams get a reader thread here; message
//!   endpoints open sources in the same machinery (the [`crate::endpoint::Inbox`]).
//! - [`feed`]: the dispatcher's end of the sources: what they send, and their partial
//!   lines, taken in order at a stop or after a silence.
//! - [`lane`]: the fast-path rule. When nothing is queued for the destination, a source
//!   writes straight to it without waiting, saving two thread hops; what does not fit is
//!   queued, and everything after queues behind it, so order is kept.
//! - [`dispatcher`]: the select loop. It takes whichever is ready first (stop, a writer
//!   failure, a reopened endpoint, a batch to receive, a held batch to hand to a
//!   writer, a timer) and alone decides when to stop.
//! - [`writer`]: a thread per endpoint, so a port that drains slowly holds back only
//!   its own direction.
//! - [`reconnect`]: `--reconnect` and `settle=`: opening lost endpoints again, the
//!   backlog kept meanwhile, holding lines while a port settles.
//! - [`shutdown`]: forwarding everything already read, then the summary.
//! - [`trace`]: per-line log formatting, escaped or as a hex dump.

use std::cell::Cell;
use std::ops::{Index, IndexMut};
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use log::{info, warn};

use crate::endpoint::contract::DEFAULT_BAUD;
use crate::endpoint::{Defaults, Endpoint, Spec};
use crate::error::Error;
use crate::framing::Framing;

mod dispatcher;
mod feed;
mod lane;
mod reader;
mod reconnect;
mod shutdown;
mod trace;
mod writer;

use dispatcher::Dispatcher;
use reconnect::Reconnect;

/// One of the two endpoints, or the direction that reads from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first endpoint on the command line.
    A,
    /// The second.
    B,
}

impl Side {
    /// Both sides, A first.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// The side across the bridge.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One value per side, indexed by [`Side`].
#[derive(Debug, Clone, Default)]
pub struct Pair<T>(pub [T; 2]);

impl<T> Pair<T> {
    /// A pair made by calling `f` for each side.
    pub fn new(mut f: impl FnMut(Side) -> T) -> Pair<T> {
        Pair([f(Side::A), f(Side::B)])
    }
}

impl<T> Index<Side> for Pair<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        &self.0[side as usize]
    }
}

impl<T> IndexMut<Side> for Pair<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        &mut self.0[side as usize]
    }
}

/// How the bridge treats the data; cli's `Config` holds one.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines or raw.
    pub framing: Framing,
    /// Forward a partial line after this much silence from its source.
    pub flush_after: Option<Duration>,
    /// Log forwarded data as a hex dump rather than an escaped string.
    pub hex: bool,
    /// Clients a listening endpoint serves at once (`None`: the endpoint's default).
    pub max_clients: Option<usize>,
    /// Open a lost endpoint again instead of ending the bridge.
    pub reconnect: bool,
    /// Lines kept for an endpoint that is down; the oldest go first.
    pub queue: usize,
    /// Log a traffic line per direction this often.
    pub stats: Option<Duration>,
    /// The baud rate of a port that sets none (`--baud`).
    pub baud: u32,
    /// How long to hold lines for a port after it opens, where it sets none (`--settle`).
    pub settle: Option<Duration>,
}

/// Lines kept for a down endpoint by default: several seconds of a chatty device at
/// 9600 baud (about 30 short lines a second), and at most 1 MiB at the default
/// `--max-line`, so memory stays small however long a board is unplugged.
pub const DEFAULT_QUEUE: usize = 256;

impl Default for Options {
    fn default() -> Options {
        Options {
            framing: Framing::default(),
            flush_after: None,
            hex: false,
            max_clients: None,
            reconnect: false,
            queue: DEFAULT_QUEUE,
            stats: None,
            baud: DEFAULT_BAUD,
            settle: None,
        }
    }
}

impl Options {
    /// What opening an endpoint needs of these options.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            framing: self.framing.clone(),
            max_clients: self.max_clients,
            baud: self.baud,
            settle: self.settle,
        }
    }
}

/// What went one way through the bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Pieces written: lines, plus pieces of over-long or partial lines (raw: reads).
    pub pieces: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// What the bridge knows of an endpoint besides its I/O: its name from the start, the
/// rest from the endpoint each time it opens.
#[derive(Debug, Clone, Default)]
struct Ends {
    /// The name used in messages.
    name: String,
    /// EOF from it is a normal end (stdin).
    eof_is_end: bool,
    /// Hold lines for it this long after it opens.
    settle: Option<Duration>,
}

/// Opens endpoints `a` and `b` and bridges them until `stop` receives (or its sender is
/// dropped) or an endpoint fails or closes. With `options.reconnect`, an endpoint that
/// cannot be opened or goes away is opened again until it is back. Returns what went
/// A to B and B to A.
///
/// A stop while an endpoint is still opening (a TCP connect that hangs) returns at
/// once with nothing bridged. When `run` returns, nothing it started acts any more:
/// reopening has ended, listeners take no clients, pty links are gone; only reader
/// threads blocked in `read` may remain, holding nothing that acts.
pub fn run(
    a: &Spec,
    b: &Spec,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    let specs = Pair([a.clone(), b.clone()]);
    let open = options.defaults();
    let stopped = Cell::new(false);
    let interrupted = || {
        if !stopped.get() {
            stopped.set(!matches!(stop.try_recv(), Err(TryRecvError::Empty)));
        }
        stopped.get()
    };
    let mut opened = Pair::new(|_| None);
    for side in Side::BOTH {
        match specs[side].open(&open, &interrupted) {
            Ok(endpoint) => opened[side] = Some(endpoint),
            Err(_) if interrupted() => break,
            // A mistake to fix (a USB selector naming several boards), not one to wait out.
            Err(error) if options.reconnect && !error.is_lasting() => {
                warn!("{error}; waiting for it (--reconnect)")
            }
            Err(error) => return Err(error),
        }
    }
    if interrupted() {
        info!("stopping before the bridge started");
        return Ok(Default::default());
    }
    if let (Some(a), Some(b)) = (&opened[Side::A], &opened[Side::B])
        && a.device().is_some()
        && a.device() == b.device()
    {
        return Err(Error::Usage(format!(
            "{}: the same device as {}; a bridge needs two different ports",
            b.name(),
            a.name()
        )));
    }
    let ends = Pair::new(|side| Ends {
        name: specs[side].to_string(),
        ..Ends::default()
    });
    let reconnect = options.reconnect.then(|| Reconnect::new(specs, open));
    Dispatcher::start(opened, ends, options, stop, reconnect)
}

/// Bridges two open endpoints; see [`run`]. An endpoint that fails or closes ends the
/// bridge: reconnecting needs the specs, which only [`run`] has.
pub fn bridge(
    a: Endpoint,
    b: Endpoint,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    let ends = Pair([&a, &b].map(|endpoint| Ends {
        name: endpoint.name().to_string(),
        ..Ends::default()
    }));
    Dispatcher::start(Pair([Some(a), Some(b)]), ends, options, stop, None)
}
