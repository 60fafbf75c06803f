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
//! - *device*, *peer*: the first endpoint on the command line, and the others. One peer
//!   makes a plain bridge (A and B); several make a *hub*: every line from the device
//!   goes to every peer, every peer's lines go to the device, peers never hear each
//!   other.
//! - *direction*: one way through the bridge, named by the endpoint it writes to: into
//!   the device go every peer's lines (one feed, so lines stay whole), into each peer
//!   the device's (`direction.rs`).
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
//! - `options.rs`: the options from the command line.
//! - `handoff.rs`: the hand-off state machine, and its model check.
//! - `source.rs`: sources, as the endpoint's inbox (one source's inlet, the way in an
//!   endpoint feeds, in `source/inlet.rs`); `feed.rs`: the dispatcher's end of them,
//!   gathering partial lines; `tee.rs`: a hub's device feeding every peer's direction.
//! - `lane.rs`: the direct route's rule and the direction's accounts; `turn.rs`: whose
//!   over-long line a destination is in the middle of.
//! - `direction.rs`: a direction's state as the dispatcher keeps it; `backlog.rs`;
//!   `lag.rs`: a hub's peer that falls behind.
//! - `dispatcher.rs`: the one thread that decides, its loop; beside it in
//!   `dispatcher/`, attaching an endpoint's threads (`attach.rs`), an endpoint that
//!   goes down and comes back (`down.rs`), the shutdown (`finish.rs`) and the
//!   `--stats` lines and summary (`report.rs`); `select.rs`: its wait.
//! - `writer.rs`: a thread per endpoint, so a port that drains slowly holds back only
//!   its own direction.
//! - `reconnect.rs`: `--reconnect`, opening lost endpoints again; `linked.rs`: the
//!   serial port across the bridge, for an endpoint that serves it (RFC 2217).
//! - `shutdown.rs`: the patience of a stop.
//! - `trace.rs`: per-line log formatting, escaped or as a hex dump.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, TryRecvError, unbounded};
use log::{info, warn};

use crate::endpoint::{Endpoint, Place, Spec};
use crate::error::Error;

mod backlog;
mod direction;
mod dispatcher;
mod feed;
mod handoff;
mod lag;
mod lane;
mod linked;
mod options;
mod reconnect;
mod select;
mod shutdown;
mod source;
mod tee;
mod trace;
mod turn;
mod writer;

use dispatcher::Dispatcher;
use reconnect::Reconnect;

pub use lane::Traffic;
pub use options::{DEFAULT_QUEUE, Options};

/// Opens endpoints `a` and `b` and bridges them: [`run_hub`] with `a` as the device and
/// `b` its one peer. Returns what went A to B and B to A.
pub fn run(
    a: &Spec,
    b: &Spec,
    options: &Options,
    stop: Receiver<()>,
) -> Result<[Traffic; 2], Error> {
    let traffic = run_hub(&[a.clone(), b.clone()], options, stop)?;
    Ok(two(traffic))
}

/// Opens `specs` (a device, then one or more peers) and bridges them until `stop`
/// receives (or its sender is dropped) or an endpoint fails or closes: every line from
/// the device goes to every peer, and every peer's lines go to the device. With
/// `options.reconnect`, an endpoint that cannot be opened or goes away is opened again
/// until it is back, while the others go on. Returns what went to each peer, in order,
/// then what went to the device.
///
/// A stop while an endpoint is still opening (a TCP connect that hangs) returns at
/// once with nothing bridged. When `run_hub` returns, nothing it started acts any more:
/// reopening has ended, listeners take no clients, pty links are gone; only reader
/// threads blocked in `read` may remain, holding nothing that acts.
pub fn run_hub(
    specs: &[Spec],
    options: &Options,
    stop: Receiver<()>,
) -> Result<Vec<Traffic>, Error> {
    let open = options.defaults();
    // A stop signal, or another endpoint that failed for good: opens under way give up.
    let (stopped, abandoned) = (AtomicBool::new(false), AtomicBool::new(false));
    let interrupted = || {
        if !stopped.load(Ordering::Acquire) && !matches!(stop.try_recv(), Err(TryRecvError::Empty))
        {
            stopped.store(true, Ordering::Release);
        }
        stopped.load(Ordering::Acquire) || abandoned.load(Ordering::Acquire)
    };
    // Files open first, in order: a port's path may be a pty's link made just before.
    // Then every other endpoint at once, on a thread of its own: a connect that hangs
    // holds up no other, and the first failure ends the others' waits.
    let mut opened: Vec<Option<Endpoint>> = specs.iter().map(|_| None).collect();
    let mut failure = None;
    let mut take = |end: usize, result: Result<Endpoint, Error>| match result {
        Ok(endpoint) => opened[end] = Some(endpoint),
        Err(_) if stopped.load(Ordering::Acquire) || abandoned.load(Ordering::Acquire) => {}
        // A mistake to fix (a USB selector naming several boards), not one to wait out.
        Err(error) if options.reconnect && !error.is_lasting() => {
            warn!("{error}; waiting for it (--reconnect)")
        }
        Err(error) => {
            abandoned.store(true, Ordering::Release);
            failure = Some(error);
        }
    };
    let file = |spec: &Spec| matches!(spec.place(), Place::Path(_) | Place::Stdio);
    for (end, spec) in specs.iter().enumerate().filter(|(_, spec)| file(spec)) {
        if !interrupted() {
            take(end, spec.open(&open, &interrupted));
        }
    }
    thread::scope(|scope| {
        let (tx, rx) = unbounded();
        for (end, spec) in specs.iter().enumerate().filter(|(_, spec)| !file(spec)) {
            if interrupted() {
                break;
            }
            let (done, interrupted, open) = (tx.clone(), &interrupted, &open);
            let spawned = thread::Builder::new()
                .name(format!("open {spec}"))
                .spawn_scoped(scope, move || {
                    let _ = done.send((end, spec.open(open, interrupted)));
                });
            if let Err(source) = spawned {
                let what = format!("cannot start opening {spec}");
                let _ = tx.send((end, Err(Error::Setup { what, source })));
            }
        }
        drop(tx);
        for (end, result) in rx {
            take(end, result);
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    if interrupted() {
        info!("stopping before the bridge started");
        return Ok(vec![Traffic::default(); specs.len()]);
    }
    for (i, first) in opened.iter().enumerate() {
        for second in &opened[i + 1..] {
            if let (Some(a), Some(b)) = (first, second)
                && a.device().is_some()
                && a.device() == b.device()
            {
                return Err(Error::Usage(format!(
                    "{}: the same device as {}; a bridge needs different ports",
                    b.name(),
                    a.name()
                )));
            }
        }
    }
    let names = specs.iter().map(Spec::to_string).collect();
    let reconnect = options
        .reconnect
        .then(|| Reconnect::new(specs.to_vec(), open));
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
    let names = [&a, &b]
        .map(|endpoint| endpoint.name().to_string())
        .to_vec();
    Dispatcher::run(vec![Some(a), Some(b)], names, options, stop, None).map(two)
}

/// A two-endpoint bridge's traffic: A to B, then B to A.
fn two(traffic: Vec<Traffic>) -> [Traffic; 2] {
    let mut traffic = traffic.into_iter();
    [(); 2].map(|_| traffic.next().unwrap_or_default())
}
