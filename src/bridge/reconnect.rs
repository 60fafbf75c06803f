//! Endpoints that go away and come back (`--reconnect`).
//!
//! When an endpoint fails or closes, the dispatcher forwards what it sent last, marks
//! it down ([`Reconnect::lost`]) and a thread opens its spec again with a growing
//! delay. Lines for it wait in a backlog meanwhile (see [`super::direction`]). When it
//! opens, new threads start and the backlog goes out first. A writer's failure carries
//! the generation of the opening it served, so a failure that arrives after a
//! reconnect is recognised as old news.
//!
//! Reopening threads are cancelled and joined when the bridge ends, so none of them
//! opens anything afterwards; an endpoint one of them opened too late is dropped,
//! which undoes it (a pty's link is removed, a listener closed).

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, bounded};
use log::{debug, warn};

use crate::endpoint::{Defaults, Endpoint, Spec};

/// The first wait before opening a lost endpoint again.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between tries: a replugged board is back within 2 s.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// What `--reconnect` needs to know and keeps.
pub struct Reconnect {
    specs: Vec<Spec>,
    open: Defaults,
    /// For each endpoint that is down, since when.
    down: Vec<Option<Instant>>,
    /// How many times each endpoint has been lost; tags writer failures and sources.
    generations: Vec<u64>,
    reconnects: u64,
    /// Per endpoint, how often it opened again.
    reopened: Vec<u64>,
    tx: Sender<(usize, Endpoint)>,
    rx: Receiver<(usize, Endpoint)>,
    /// Dropped to cancel every reopening thread at once.
    cancel: Option<Sender<()>>,
    cancelled: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Reconnect {
    /// Ready to reopen `specs` (the device first) with `open`.
    pub fn new(specs: Vec<Spec>, open: Defaults) -> Reconnect {
        // Reopened endpoints waiting for the dispatcher: one per endpoint at most.
        let (tx, rx) = bounded(specs.len());
        let count = specs.len();
        let (cancel, cancelled) = bounded(0);
        Reconnect {
            specs,
            open,
            down: vec![None; count],
            generations: vec![0; count],
            reconnects: 0,
            reopened: vec![0; count],
            tx,
            rx,
            cancel: Some(cancel),
            cancelled,
            threads: Vec::new(),
        }
    }

    /// Where reopened endpoints arrive.
    pub fn rx(&self) -> &Receiver<(usize, Endpoint)> {
        &self.rx
    }

    /// Which opening of `end` is current.
    pub fn generation(&self, end: usize) -> u64 {
        self.generations[end]
    }

    /// Endpoints opened again so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// How often the endpoint `end` opened again.
    pub fn reconnects_of(&self, end: usize) -> u64 {
        self.reopened[end]
    }

    /// Marks `end` down and starts opening it again; false if it already was down.
    pub fn lost(&mut self, end: usize) -> bool {
        if self.down[end].is_some() || self.cancel.is_none() {
            return false;
        }
        self.down[end] = Some(Instant::now());
        self.generations[end] += 1;
        self.threads.retain(|thread| !thread.is_finished());
        let (spec, open) = (self.specs[end].clone(), self.open.clone());
        let (tx, cancelled) = (self.tx.clone(), self.cancelled.clone());
        let spawned = thread::Builder::new()
            .name(format!("reopen {spec}"))
            .spawn(move || reopen(end, &spec, &open, &tx, &cancelled));
        match spawned {
            Ok(thread) => self.threads.push(thread),
            Err(error) => warn!("cannot start reconnecting: {error}"),
        }
        true
    }

    /// Whether `end` is down.
    pub fn is_down(&self, end: usize) -> bool {
        self.down[end].is_some()
    }

    /// `end` is open again; returns how long it was down.
    pub fn back(&mut self, end: usize) -> Duration {
        self.reconnects += 1;
        self.reopened[end] += 1;
        self.down[end]
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
    end: usize,
    spec: &Spec,
    open: &Defaults,
    tx: &Sender<(usize, Endpoint)>,
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
                let _ = tx.send((end, endpoint));
                return;
            }
            Err(error) => debug!("{error}; trying again in {delay:?}"),
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
