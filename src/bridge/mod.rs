//! The running bridge: every thread and channel lives here, one room per concern.
//!
//! ```text
//!  A ──read──▶ [source A] ──deliveries──▶ ┌────────────┐ ──▶ [writer B] ──write──▶ B
//!          │  (one per client of a server)    │ dispatcher │            ▲
//!          └──────── direct route ──────────────────────────────────────┘
//!  A ◀─write── [writer A] ◀── batches ── └────────────┘ ◀── [source B] ◀──read── B
//!                                               ▲ stop (Ctrl-C, SIGTERM, SIGHUP)
//! ```
//!
//! **Words.** Each means one thing, here and in every room below.
//! - *line*: bytes up to and including the delimiter.
//! - *piece*: what the framer hands on: a line, the first `--max-line` bytes of an
//!   over-long one, a partial line taken at a silence or a stop, or (raw) one read.
//! - *batch*: the pieces of one read, back to back ([`crate::framing::Batch`]).
//! - *source*: one stream of bytes into a direction: a byte stream's reader, or one
//!   client of a server (`source.rs`).
//! - *direction*: one way through the bridge, named by the side it reads from:
//!   direction A carries A's lines to B (`direction.rs`).
//! - *lane*: a direction's way to its destination, and its accounts (`lane.rs`).
//! - *direct route*: a source writes its batch itself, through the destination's
//!   never-waiting way out, when nothing is queued for it: no thread hop.
//! - *queued route*: source to dispatcher to writer, for whatever the direct route
//!   did not take.
//! - *delivery*: one item on a direction's channel: what a read left for the queued
//!   route (maybe only the news that a partial line is pending), or the error that
//!   ended its source.
//! - *hand-off*: the counted protocol that keeps a source's deliveries and the partial
//!   lines the dispatcher takes from it in order (`handoff.rs`).
//! - *backlog*: lines kept for a destination that is down or settling.
//! - *settle*: holding lines for a port for a while after it opens (`settle=MS`).
//!
//! **Rooms.** Each file owns its state; none reaches into another's.
//! - `side.rs`, `options.rs`: the two sides, and the options from the command line.
//! - `handoff.rs`: the hand-off state machine, and its model check.
//! - `source.rs`: sources, as the endpoint's inbox and inlets; `feed.rs`: the
//!   dispatcher's end of them, gathering partial lines.
//! - `lane.rs`: the direct route's rule and the direction's accounts.
//! - `direction.rs`: a direction's state as the dispatcher keeps it; `backlog.rs`.
//! - `dispatcher.rs`: the one thread that decides; `select.rs`: its wait.
//! - `writer.rs`: a thread per endpoint, so a port that drains slowly holds back only
//!   its own direction.
//! - `reconnect.rs`: `--reconnect`, opening lost endpoints again.
//! - `shutdown.rs`: the patience of a stop.
//! - `trace.rs`: per-line log formatting, escaped or as a hex dump.

use std::cell::Cell;

use crossbeam_channel::{Receiver, TryRecvError};
use log::{info, warn};

use crate::endpoint::{Endpoint, Spec};
use crate::error::Error;

mod backlog;
mod direction;
mod dispatcher;
mod feed;
mod handoff;
mod lane;
mod options;
mod reconnect;
mod select;
mod shutdown;
mod side;
mod source;
mod trace;
mod writer;

use dispatcher::Dispatcher;
use reconnect::Reconnect;

pub use lane::Traffic;
pub use options::{DEFAULT_QUEUE, Options};
pub use side::{Pair, Side};

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
    let names = Pair::new(|side| specs[side].to_string());
    let reconnect = options.reconnect.then(|| Reconnect::new(specs, open));
    Dispatcher::run(opened, names, options, stop, reconnect)
}

/// Bridges two open endpoints; see [`run`]. An endpoint that fails or closes ends the
/// bridge: reconnecting needs the specs, which only [`run`] has.
pub fn bridge(
    a: Endpoint,
    b: Endpoint,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    let names = Pair([&a, &b].map(|endpoint| endpoint.name().to_string()));
    Dispatcher::run(Pair([Some(a), Some(b)]), names, options, stop, None)
}
