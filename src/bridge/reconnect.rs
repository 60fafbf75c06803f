//! Endpoints that go away and come back (`--reconnect`), and endpoints that need a
//! moment after opening (`settle=MS`).
//!
//! When an endpoint fails or closes, the dispatcher forwards what it sent last, marks
//! it down and starts a thread that opens its spec again with a growing delay. Lines
//! for it go to a bounded [`Backlog`] (`--queue`, oldest dropped first) instead of its
//! writer, so the other endpoint keeps being read. When it opens, new threads start and
//! the backlog goes out first. A writer's failure carries the generation of the opening
//! it served, so a failure that arrives after a reconnect is recognised as old news.
//!
//! Settling uses the same backlog: after opening, lines for the endpoint wait until its
//! time is up ([`Settling`]), then go out first.
//!
//! Reopening threads are cancelled and joined when the bridge ends, so none of them
//! opens anything afterwards; an endpoint one of them opened too late is dropped,
//! which undoes it (a pty's link is removed, a listener closed).

use std::collections::VecDeque;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, bounded};
use log::{debug, info, warn};

use super::dispatcher::Dispatcher;
use super::feed::Take;
use super::lane::Lane;
use super::shutdown::SHUTDOWN_GRACE;
use super::{Pair, Side};
use crate::endpoint::{Defaults, Direct, Endpoint, Spec};
use crate::error::Error;
use crate::framing::Batch;

/// The first wait before opening a lost endpoint again.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between tries: a replugged board is back within 2 s.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Reopened endpoints waiting for the dispatcher: one per side at most.
const REOPENED_QUEUE: usize = 2;

/// What `--reconnect` needs to know and keeps.
pub struct Reconnect {
    specs: Pair<Spec>,
    open: Defaults,
    /// For each side that is down, since when.
    down: Pair<Option<Instant>>,
    /// How many times each side has been lost; tags writer failures.
    generations: Pair<u64>,
    reconnects: u64,
    tx: Sender<(Side, Endpoint)>,
    rx: Receiver<(Side, Endpoint)>,
    /// Dropped to cancel every reopening thread at once.
    cancel: Option<Sender<()>>,
    cancelled: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Reconnect {
    /// Ready to reopen `specs` with `open`.
    pub fn new(specs: Pair<Spec>, open: Defaults) -> Reconnect {
        let (tx, rx) = bounded(REOPENED_QUEUE);
        let (cancel, cancelled) = bounded(0);
        Reconnect {
            specs,
            open,
            down: Pair::default(),
            generations: Pair::default(),
            reconnects: 0,
            tx,
            rx,
            cancel: Some(cancel),
            cancelled,
            threads: Vec::new(),
        }
    }

    /// Where reopened endpoints arrive.
    pub fn rx(&self) -> &Receiver<(Side, Endpoint)> {
        &self.rx
    }

    /// Which opening of `side` is current.
    pub fn generation(&self, side: Side) -> u64 {
        self.generations[side]
    }

    /// Endpoints opened again so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Marks `side` down and starts opening it again; false if it already was down.
    fn lost(&mut self, side: Side) -> bool {
        if self.down[side].is_some() || self.cancel.is_none() {
            return false;
        }
        self.down[side] = Some(Instant::now());
        self.generations[side] += 1;
        self.threads.retain(|thread| !thread.is_finished());
        let (spec, open) = (self.specs[side].clone(), self.open.clone());
        let (tx, cancelled) = (self.tx.clone(), self.cancelled.clone());
        let spawned = thread::Builder::new()
            .name(format!("reopen {spec}"))
            .spawn(move || reopen(side, &spec, &open, &tx, &cancelled));
        match spawned {
            Ok(thread) => self.threads.push(thread),
            Err(error) => warn!("cannot start reconnecting: {error}"),
        }
        true
    }

    /// `side` is open again; returns how long it was down.
    fn back(&mut self, side: Side) -> Duration {
        self.reconnects += 1;
        self.down[side]
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    /// Stops every reopening thread and waits for it; endpoints opened meanwhile are
    /// dropped. Nothing opens after this returns.
    pub fn cancel(&mut self) {
        self.cancel = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        while self.rx.try_recv().is_ok() {}
    }
}

/// A reopening thread: opens `spec` again and again, waiting longer each time (up to
/// [`RECONNECT_MAX`]), until it opens or the bridge cancels. The path is resolved afresh
/// each time, so a `/dev/serial/by-id/...` link that moved to a new device is followed.
fn reopen(
    side: Side,
    spec: &Spec,
    open: &Defaults,
    tx: &Sender<(Side, Endpoint)>,
    cancelled: &Receiver<()>,
) {
    let interrupted = || !matches!(cancelled.try_recv(), Err(TryRecvError::Empty));
    let mut delay = RECONNECT_FIRST;
    loop {
        match cancelled.recv_timeout(delay) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        match spec.open(open, &interrupted) {
            // Opened too late: dropping it undoes it.
            Ok(_) if interrupted() => return,
            Ok(endpoint) => {
                let _ = tx.send((side, endpoint));
                return;
            }
            Err(error) => debug!("{error}; trying again in {delay:?}"),
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// Pieces bound for a down or settling endpoint, oldest first.
#[derive(Default)]
pub struct Backlog {
    pieces: VecDeque<Vec<u8>>,
    /// Dropped during this outage; logged once when it starts, once at the end.
    dropped: u64,
}

impl Backlog {
    /// Adds the pieces of `batch`, dropping the oldest beyond `limit` (counted as lost
    /// in `lane`). Returns true when this is the first drop of the outage.
    pub fn push(&mut self, batch: Batch, limit: usize, lane: &Lane) -> bool {
        let before = self.dropped;
        for piece in batch.iter() {
            self.pieces.push_back(piece.to_vec());
            while self.pieces.len() > limit {
                let oldest = self.pieces.pop_front().expect("over the limit");
                lane.lost(1, oldest.len());
                self.dropped += 1;
            }
        }
        before == 0 && self.dropped > 0
    }

    /// Pieces dropped during this outage.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Pieces still waiting.
    pub fn waiting(&self) -> usize {
        self.pieces.len()
    }

    /// Everything still waiting, as one batch.
    pub fn into_batch(self) -> Batch {
        let mut batch = Batch::default();
        self.pieces.iter().for_each(|piece| batch.push(piece));
        batch
    }
}

/// An endpoint settling after it opened: lines for it wait until `until`, then its
/// never-waiting way out (`direct`) is put in place.
pub struct Settling {
    pub until: Instant,
    direct: Option<Box<dyn Direct>>,
}

impl Dispatcher {
    /// The endpoint on `side` is gone. Without `--reconnect` that ends the bridge with
    /// `error`; with it, the endpoint goes down and is opened again.
    pub fn lose(&mut self, side: Side, error: Error) -> Result<(), Error> {
        let Some(reconnect) = &self.reconnect else {
            return Err(error);
        };
        if reconnect.down[side].is_none() {
            warn!("{error}; reconnecting");
            self.go_down(side);
        }
        Ok(())
    }

    /// Marks `side` down and starts opening it again: what it sent before it went still
    /// goes on, and lines for it wait in a backlog.
    pub fn go_down(&mut self, side: Side) {
        let Some(reconnect) = &mut self.reconnect else {
            return;
        };
        if !reconnect.lost(side) {
            return;
        }
        let dir = &mut self.dirs[side];
        dir.flush_at = None;
        if let Some(feed) = dir.feed.take() {
            // A source still waiting for room queues the rest of its read instead.
            dir.lane.interrupt();
            let taken = feed.take(Take::All, Some(Instant::now() + SHUTDOWN_GRACE));
            dir.cuts += feed.cuts();
            self.hold(side, taken.batch);
        }
        let into = side.other();
        let dir = &mut self.dirs[into];
        dir.out = None;
        dir.lane.set_direct(None);
        // Lines held while it settled stay in the backlog.
        dir.settling = None;
        dir.backlog.get_or_insert_with(Backlog::default);
        if let Some(held) = dir.held.take() {
            self.hold(into, held);
        }
    }

    /// The endpoint on `side` is open again: new threads, and its backlog goes out
    /// first (after it settles, if it asks to).
    pub fn restore(&mut self, side: Side, endpoint: Endpoint) -> Result<(), Error> {
        let Some(reconnect) = &mut self.reconnect else {
            return Ok(());
        };
        let since = reconnect.back(side);
        info!(
            "{}: back after {:.1} s",
            self.ends[side].name,
            since.as_secs_f64()
        );
        self.attach(side, endpoint)
    }

    /// Holds lines for `side` for `time` after it opened; `direct` is its
    /// never-waiting way out, put in place when that time is up.
    pub fn settle(&mut self, side: Side, time: Duration, direct: Option<Box<dyn Direct>>) {
        debug!(
            "{}: holding lines for it {time:?} while it settles",
            self.ends[side].name
        );
        let dir = &mut self.dirs[side.other()];
        dir.backlog.get_or_insert_with(Backlog::default);
        dir.settling = Some(Settling {
            until: Instant::now() + time,
            direct,
        });
    }

    /// Ends the settling of every endpoint whose time is up (`all`: every endpoint, as
    /// at a stop, when held lines go out like any others).
    pub fn end_settling(&mut self, all: bool) {
        let now = Instant::now();
        for side in Side::BOTH {
            let dir = &mut self.dirs[side.other()];
            if dir.settling.as_ref().is_some_and(|s| all || s.until <= now) {
                let settling = dir.settling.take().expect("settling");
                self.release(side, settling.direct);
            }
        }
    }

    /// Lets lines flow to `side` again: its backlog goes out first, then the fast path
    /// (`direct`) may resume.
    pub fn release(&mut self, side: Side, direct: Option<Box<dyn Direct>>) {
        let to = &self.ends[side].name;
        let dir = &mut self.dirs[side.other()];
        if let Some(backlog) = dir.backlog.take() {
            if backlog.dropped() > 0 {
                warn!(
                    "{}: {} lines dropped while {to} was down",
                    dir.label,
                    backlog.dropped()
                );
            }
            let batch = backlog.into_batch();
            if !batch.is_empty() {
                match &mut dir.held {
                    Some(held) => held.append(batch),
                    None => dir.held = Some(batch),
                }
            }
        }
        // The backlog counts as outstanding, so the fast path waits until it is out.
        dir.lane.set_direct(direct);
    }
}
