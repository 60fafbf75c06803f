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

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use log::{info, warn};

use super::direction::Direction;
use super::lane::{Lane, Traffic};
use super::linked::Linked;
use super::options::Options;
use super::reconnect::Reconnect;
use super::select::{Event, Inputs, wait};
use super::shutdown::{Patience, SHUTDOWN_GRACE, STOP_GRACE, wait_for_writers};
use super::source::{Failed, Origin, Owner, Sources, Tally};
use super::tee::Tee;
use super::trace;
use super::writer::{Failure, Writing, spawn_writer};
use crate::endpoint::{ControlLink, Endpoint, GiveUp, Inbox, Stop};
use crate::error::Error;
use crate::framing::Batch;

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

    /// Starts moving data for the open `endpoint` number `end`: its sources feed the
    /// directions out of it (into every peer, or into the device), and a writer takes
    /// the direction into it.
    fn attach(&mut self, end: usize, endpoint: Endpoint) -> Result<(), Error> {
        let name = self.names[end].clone();
        self.ends_input[end] = endpoint.ends_input();
        let settle = endpoint.settle();
        let origin = Origin {
            end,
            generation: self.generation(end),
        };
        let (alive, alive_rx) = bounded(0);
        let hub = self.hub();
        let owner = |label: String, tally: Option<Arc<Tally>>| Owner {
            origin,
            label,
            // A hub's peers share the direction into the device.
            client: hub && tally.is_some(),
            tally,
            alive: alive.clone(),
        };
        let inbox: Box<dyn Inbox> = if end == DEVICE {
            let mut tee: Vec<Sources> = (1..self.names.len())
                .map(|peer| {
                    let label = format!("{name} -> {}", self.names[peer]);
                    self.into[peer].sources(owner(label, None))
                })
                .collect();
            match tee.len() {
                1 => Box::new(tee.pop().expect("one peer")),
                _ => Box::new(Tee(tee)),
            }
        } else {
            let label = format!("{name} -> {}", self.names[DEVICE]);
            let tally = self.tallies[end].clone();
            Box::new(self.into[DEVICE].sources(owner(label, tally)))
        };
        drop(alive);
        self.alive[end] = Some(alive_rx);
        self.links[end].set(endpoint.control());
        let across = self.across(end);
        let link = across.map_or_else(ControlLink::default, |i| self.links[i].clone());
        let across = across.map(|i| self.names[i].clone());
        let inbox = Box::new(Linked(inbox, link, across));
        let setup = |what: &str| {
            let what = format!("cannot start {what} for {name}");
            move |source| Error::Setup { what, source }
        };
        let running = endpoint
            .start(inbox, self.give_up.clone())
            .map_err(setup("threads"))?;
        let writing = Writing {
            name: name.clone(),
            end,
            generation: origin.generation,
            lane: Arc::clone(self.into[end].lane()),
            fail: self.fail_tx.clone(),
            done: self.done.clone().expect("endpoints attach before shutdown"),
            give_up: self.give_up.clone(),
        };
        let out = spawn_writer(running.outbox, writing).map_err(setup("the writer thread"))?;
        self.into[end].connect(out);
        if let Some(old) = self.stops[end].replace(running.stop) {
            old.stop(Instant::now() + STOP_GRACE);
        }
        match settle {
            Some(time) => self.into[end].settle(time, running.direct),
            None => self.into[end].release(running.direct),
        }
        Ok(())
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

    /// `--stats`: the traffic lines, and the time of the next.
    fn log_stats(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.stats_at, self.options.stats) else {
            return;
        };
        if now < at {
            return;
        }
        self.report(false).iter().for_each(|line| info!("{line}"));
        self.stats_at = Some(Instant::now() + every);
    }

    /// One line per direction: to each peer, then into the device; in a hub, also one
    /// per peer for what it handed to the device. With `last`, the summary's lines,
    /// which also say what did not get through.
    fn report(&self, last: bool) -> Vec<String> {
        // With one peer, the reconnects of both; in a hub, each line its own peer's
        // (the device's on the line into it).
        let reconnects = |end: usize| {
            self.reconnect.as_ref().map(|r| match self.hub() {
                true => r.reconnects_of(end),
                false => r.reconnects(),
            })
        };
        let line = |end: usize| match last {
            true => self.into[end].summary(reconnects(end)),
            false => self.into[end].traffic(reconnects(end)),
        };
        let mut lines: Vec<String> = (1..self.into.len()).map(line).collect();
        for (end, tally) in self.tallies.iter().enumerate() {
            if let Some(tally) = tally {
                let label = format!("{} -> {}", self.names[end], self.names[DEVICE]);
                let shown = trace::Shown {
                    reconnects: reconnects(end),
                    dropped: true,
                    read: true,
                    ..trace::Shown::default()
                };
                let (taken, missed) = (tally.taken(), tally.missed());
                let framing = &self.options.framing;
                lines.push(trace::traffic(&label, &taken, framing, missed, shown));
            }
        }
        lines.push(line(DEVICE));
        lines
    }

    /// The endpoint `end` is gone. Without `--reconnect` that ends the bridge with
    /// `error`; with it, the endpoint goes down and is opened again.
    fn lose(&mut self, end: usize, error: Error) -> Result<(), Error> {
        let Some(reconnect) = &self.reconnect else {
            return Err(error);
        };
        if !reconnect.is_down(end) {
            warn!("{error}; reconnecting");
            self.go_down(end);
        }
        Ok(())
    }

    /// The endpoint across from `end` (its serial port link, its name): the other of
    /// two endpoints; in a hub, the device for a peer and none for the device.
    fn across(&self, end: usize) -> Option<usize> {
        match (self.hub(), end) {
            (false, DEVICE) => Some(1),
            (_, DEVICE) => None,
            _ => Some(DEVICE),
        }
    }

    /// Marks `end` down and starts opening it again: what it sent before it went still
    /// goes on, and lines for it wait in a backlog.
    fn go_down(&mut self, end: usize) {
        let Some(reconnect) = &mut self.reconnect else {
            return;
        };
        if !reconnect.lost(end) {
            return;
        }
        self.links[end].set(None);
        if end == DEVICE {
            for peer in 1..self.into.len() {
                self.into[peer].sources_gone(SHUTDOWN_GRACE);
            }
        } else if !self.hub() {
            self.into[DEVICE].sources_gone(SHUTDOWN_GRACE);
        }
        // A hub's peer shares the direction into the device with the others: what its
        // sources still read goes on, until it is stopped when it opens again.
        self.into[end].destination_gone();
    }

    /// The endpoint `end` is open again: new threads, and its backlog goes out first
    /// (after it settles, if it asks to).
    fn restore(&mut self, end: usize, endpoint: Endpoint) -> Result<(), Error> {
        let Some(reconnect) = &mut self.reconnect else {
            return Ok(());
        };
        let since = reconnect.back(end);
        let name = &self.names[end];
        info!("{name}: back after {:.1} s", since.as_secs_f64());
        self.attach(end, endpoint)
    }

    /// Forwards everything already read, lets the writers drain, logs the summary and
    /// stops every endpoint; see [`super::shutdown`]. With `patient` (the input ended),
    /// everything is written however long the ports take, unless a stop signal comes
    /// meanwhile; then the usual grace applies.
    fn finish(&mut self, patient: bool) {
        if let Some(reconnect) = &mut self.reconnect {
            reconnect.cancel();
        }
        // Sources waiting for a full destination hand the rest over instead.
        self.into.iter().for_each(Direction::stop);
        let mut patience = Patience::new(patient, &self.stop);
        if self.hub() {
            // A stuck peer must not keep a hub whose input ended running for ever.
            let lanes: Vec<Arc<Lane>> = self.into.iter().map(|d| Arc::clone(d.lane())).collect();
            patience = patience.while_moving(move || lanes.iter().map(|l| l.outstanding()).sum());
        }
        let now = Instant::now();
        for dir in &mut self.into {
            dir.end_settling(now, true);
        }
        let count = self.into.len();
        for into in (1..count).chain([DEVICE]) {
            let deadline = patience.deadline();
            self.into[into].hand_over(deadline, || !patience.over());
        }
        self.done = None;
        wait_for_writers(&self.done_rx, &mut patience, &self.give_up);
        self.report(true).iter().for_each(|line| info!("{line}"));
        // Listeners stop taking clients, connections say goodbye, pty links go: all
        // within one grace, however many peers a hub has.
        let deadline = patience.stops_by();
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            stop.stop(deadline);
        }
    }
}
