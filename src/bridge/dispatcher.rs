//! The dispatcher: the bridge's state while it runs, and the one thread that changes
//! it. It runs on the caller's thread, waits for whichever event comes first
//! ([`super::select`]), and alone decides when to stop; then it forwards what was read
//! ([`Dispatcher::finish`], with [`super::shutdown`]'s patience). An endpoint that goes
//! away is opened again with `--reconnect` ([`super::reconnect`]).
//!
//! Endpoints are numbered as on the command line: the device is [`DEVICE`], its peers
//! follow (one peer: a plain bridge; several: a hub). Each has one direction that writes
//! to it, `into[end]`: into the device go every peer's lines (one feed, so each line
//! stays whole), into each peer the device's (the device's sources feed them all, see
//! [`super::tee`]).
//!
//! This file is the loop: the state, the start, the wait and what each event does.
//! The rest of the one `impl` sits in child modules, which see the state's private
//! fields as before: attaching an open endpoint's threads (`attach.rs`), an endpoint
//! that goes down and comes back (`down.rs`), the shutdown (`finish.rs`), and the
//! `--stats` lines and the summary (`report.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use log::info;

use super::direction::Direction;
use super::lane::Traffic;
use super::options::Options;
use super::reconnect::Reconnect;
use super::select::{Event, Inputs, wait};
use super::source::{Failed, Tally};
use super::trace;
use super::writer::Failure;
use crate::endpoint::{ControlLink, Endpoint, GiveUp, Stop};
use crate::error::Error;
use crate::framing::Batch;

mod attach;
mod down;
mod finish;
mod report;

/// The device: the first endpoint on the command line. The others are its peers.
pub const DEVICE: usize = 0;

/// Writer failures waiting for the dispatcher: one per writer at most.
const FAILURE_QUEUE: usize = 4;

/// Why forwarding ended without a failure.
enum End {
    /// A stop signal.
    Stop,
    /// A source whose EOF is a normal end (stdin) reached it.
    Input,
}

/// The bridge's state while it runs.
pub struct Dispatcher {
    /// `into[end]` carries lines to endpoint `end`.
    into: Vec<Direction>,
    names: Vec<String>,
    /// Whether each endpoint's end of input is a normal end (stdin).
    ends_input: Vec<bool>,
    /// Per endpoint whose sources are watched: disconnects once they are all gone.
    alive: Vec<Option<Receiver<()>>>,
    /// In a hub, per peer: what it handed to the device.
    tallies: Vec<Option<Arc<Tally>>>,
    options: Options,
    stop: Receiver<()>,
    fail_tx: Sender<Failure>,
    fail_rx: Receiver<Failure>,
    /// Cloned into every writer; dropped at shutdown so `done_rx` can tell when the
    /// last writer has ended.
    done: Option<Sender<()>>,
    done_rx: Receiver<()>,
    /// Set at shutdown when writers should stop waiting for a stuck port.
    give_up: GiveUp,
    /// With `--reconnect`.
    reconnect: Option<Reconnect>,
    /// How to stop each endpoint, kept until the bridge ends or the endpoint goes.
    stops: Vec<Option<Box<dyn Stop>>>,
    /// When to log the next `--stats` line.
    stats_at: Option<Instant>,
    /// Per endpoint: its serial port's controls while it is up, for the endpoint
    /// across from it.
    links: Vec<ControlLink>,
}

impl Dispatcher {
    /// Bridges the `opened` endpoints named `names` (the device first; a missing one is
    /// down and waited for) until a stop, the end of input or a failure; then shuts
    /// down. Returns what went to each peer, in order, then what went to the device.
    pub fn run(
        opened: Vec<Option<Endpoint>>,
        names: Vec<String>,
        options: &Options,
        stop: Receiver<()>,
        reconnect: Option<Reconnect>,
    ) -> Result<Vec<Traffic>, Error> {
        let count = names.len();
        let hub = count > 2;
        let device = &names[DEVICE];
        let peers = names[1..].join(", ");
        info!(
            "bridging {device} <-> {peers} ({})",
            trace::framing(&options.framing)
        );
        let (fail_tx, fail_rx) = bounded(FAILURE_QUEUE);
        let (done, done_rx) = bounded(0);
        let into = (0..count)
            .map(|end| match end {
                DEVICE if hub => Direction::new("all peers", device, options, false),
                DEVICE => Direction::new(&names[1], device, options, false),
                peer => Direction::new(device, &names[peer], options, hub),
            })
            .collect();
        let mut dispatcher = Dispatcher {
            into,
            ends_input: vec![false; count],
            alive: vec![None; count],
            tallies: (0..count)
                .map(|end| (hub && end != DEVICE).then(Arc::default))
                .collect(),
            names,
            options: options.clone(),
            stop,
            fail_tx,
            fail_rx,
            done: Some(done),
            done_rx,
            give_up: GiveUp::default(),
            reconnect,
            stops: (0..count).map(|_| None).collect(),
            stats_at: options.stats.map(|every| Instant::now() + every),
            // One link each: cloned, they would all be one.
            links: (0..count).map(|_| ControlLink::default()).collect(),
        };
        // Every link is in place before any endpoint starts, so each sees the port
        // across from it (a pty passes its program's settings on to a remote port).
        for (link, endpoint) in dispatcher.links.iter().zip(&opened) {
            link.set(endpoint.as_ref().and_then(Endpoint::control));
        }
        let mut outcome = Ok(End::Stop);
        for (end, endpoint) in opened.into_iter().enumerate() {
            match endpoint {
                Some(endpoint) => {
                    if let Err(error) = dispatcher.attach(end, endpoint) {
                        outcome = Err(error);
                    }
                }
                None => dispatcher.go_down(end),
            }
        }
        if outcome.is_ok() {
            outcome = dispatcher.forward();
        }
        dispatcher.finish(matches!(outcome, Ok(End::Input)));
        let order = (1..count).chain([DEVICE]);
        outcome.map(|_| {
            order
                .map(|end| dispatcher.into[end].lane().traffic())
                .collect()
        })
    }

    /// Whether the device has several peers.
    fn hub(&self) -> bool {
        self.names.len() > 2
    }

    /// Which opening of `end` is current.
    fn generation(&self, end: usize) -> u64 {
        self.reconnect.as_ref().map_or(0, |r| r.generation(end))
    }

    /// Moves lines until a stop or the end of input (`Ok`), or a failure (`Err`).
    fn forward(&mut self) -> Result<End, Error> {
        loop {
            match self.wait() {
                Event::Stop => {
                    info!("stopping");
                    return Ok(End::Stop);
                }
                Event::Failed(failure) => {
                    // A writer from before a reconnect is old news.
                    if failure.generation == self.generation(failure.end) {
                        self.lose(failure.end, failure.error)?;
                    }
                }
                Event::Reopened(end, endpoint) => self.restore(end, endpoint)?,
                Event::Received(into, Some(delivery)) => {
                    if let Err(failed) = self.into[into].receive(delivery) {
                        self.failed(failed)?;
                    }
                }
                // The feed keeps its channel open while it watches it; if it ever went,
                // the direction's sources are gone.
                Event::Received(into, None) => self.into[into].sources_gone(Duration::ZERO),
                Event::Ended(end) => {
                    self.alive[end] = None;
                    if self.reconnect.as_ref().is_some_and(|r| r.is_down(end)) {
                        continue;
                    }
                    let endpoint = self.names[end].clone();
                    if self.ends_input[end] {
                        info!("{endpoint}: end of input");
                        return Ok(End::Input);
                    }
                    self.lose(end, Error::Closed { endpoint })?;
                }
                // The writer ended; its failure is on the way.
                Event::Sent(into, result) => self.into[into].sent(result),
                Event::Timer => {
                    let now = Instant::now();
                    for into in 0..self.into.len() {
                        if let Some(failed) = self.into[into].flush(now) {
                            self.failed(failed)?;
                        }
                        self.into[into].end_settling(now, false);
                        self.into[into].check_lag(now);
                    }
                    self.log_stats(now);
                }
            }
        }
    }

    /// A source's read error: its endpoint is lost, unless it was replaced since.
    fn failed(&mut self, failed: Failed) -> Result<(), Error> {
        let Failed { origin, error } = failed;
        if origin.generation != self.generation(origin.end) {
            return Ok(());
        }
        let endpoint = self.names[origin.end].clone();
        self.lose(
            origin.end,
            Error::Read {
                endpoint,
                source: error,
            },
        )
    }

    /// Waits for the first event; see [`super::select`].
    fn wait(&mut self) -> Event {
        // Held batches leave their directions while the select borrows them.
        let mut held: Vec<Option<Batch>> = self.into.iter_mut().map(|d| d.take_held()).collect();
        let inputs = Inputs {
            stop: &self.stop,
            failures: &self.fail_rx,
            reopened: self.reconnect.as_ref().map(Reconnect::rx),
            alive: &self.alive,
        };
        let event = wait(&inputs, &self.into, &mut held, self.stats_at);
        for (dir, held) in self.into.iter_mut().zip(held) {
            dir.put_held(held);
        }
        event
    }
}
