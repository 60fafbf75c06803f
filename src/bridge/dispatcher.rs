//! The dispatcher: the bridge's state while it runs, and the one thread that changes
//! it. It runs on the caller's thread, waits for whichever event comes first
//! ([`super::select`]), and alone decides when to stop; then it forwards what was read
//! ([`Dispatcher::finish`], with [`super::shutdown`]'s patience). An endpoint that goes
//! away is opened again with `--reconnect` ([`super::reconnect`]).

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use log::{info, warn};

use super::direction::Direction;
use super::lane::Traffic;
use super::options::Options;
use super::reconnect::Reconnect;
use super::select::{Event, Inputs, wait};
use super::shutdown::{Patience, SHUTDOWN_GRACE, STOP_GRACE, wait_for_writers};
use super::side::{Pair, Side};
use super::trace;
use super::writer::{Failure, Writing, spawn_writer};
use crate::endpoint::{Endpoint, GiveUp, Stop};
use crate::error::Error;
use crate::framing::Batch;

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
    /// Direction A carries A's lines to B.
    dirs: Pair<Direction>,
    names: Pair<String>,
    /// Whether each endpoint's end of input is a normal end (stdin).
    ends_input: Pair<bool>,
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
    stops: Pair<Option<Box<dyn Stop>>>,
    /// When to log the next `--stats` line.
    stats_at: Option<Instant>,
}

impl Dispatcher {
    /// Bridges the `opened` endpoints named `names` (a missing one is down and waited
    /// for) until a stop, the end of input or a failure; then shuts down.
    pub fn run(
        opened: Pair<Option<Endpoint>>,
        names: Pair<String>,
        options: &Options,
        stop: Receiver<()>,
        reconnect: Option<Reconnect>,
    ) -> Result<[Traffic; 2], Error> {
        let (a, b) = (&names[Side::A], &names[Side::B]);
        info!(
            "bridging {a} <-> {b} ({})",
            trace::framing(&options.framing)
        );
        let (fail_tx, fail_rx) = bounded(FAILURE_QUEUE);
        let (done, done_rx) = bounded(0);
        let mut dispatcher = Dispatcher {
            dirs: Pair::new(|side| Direction::new(&names[side], &names[side.other()], options)),
            names,
            ends_input: Pair::default(),
            options: options.clone(),
            stop,
            fail_tx,
            fail_rx,
            done: Some(done),
            done_rx,
            give_up: GiveUp::default(),
            reconnect,
            stops: Pair::default(),
            stats_at: options.stats.map(|every| Instant::now() + every),
        };
        let [a, b] = opened.0;
        let mut outcome = Ok(End::Stop);
        for (side, endpoint) in [(Side::A, a), (Side::B, b)] {
            match endpoint {
                Some(endpoint) => {
                    if let Err(error) = dispatcher.attach(side, endpoint) {
                        outcome = Err(error);
                    }
                }
                None => dispatcher.go_down(side),
            }
        }
        if outcome.is_ok() {
            outcome = dispatcher.forward();
        }
        dispatcher.finish(matches!(outcome, Ok(End::Input)));
        outcome.map(|_| dispatcher.dirs.0.each_ref().map(|dir| dir.lane().traffic()))
    }

    /// Starts moving data for the open `endpoint` on `side`: its sources feed direction
    /// `side`, and a writer takes direction `side.other()`'s batches to it.
    fn attach(&mut self, side: Side, endpoint: Endpoint) -> Result<(), Error> {
        let name = self.names[side].clone();
        self.ends_input[side] = endpoint.ends_input();
        let settle = endpoint.settle();
        let into = side.other();
        let setup = |what: &str| {
            let what = format!("cannot start {what} for {name}");
            move |source| Error::Setup { what, source }
        };
        let sources = self.dirs[side].open_sources();
        let running = endpoint
            .start(Box::new(sources), self.give_up.clone())
            .map_err(setup("threads"))?;
        let writing = Writing {
            name: name.clone(),
            side,
            generation: self.reconnect.as_ref().map_or(0, |r| r.generation(side)),
            lane: std::sync::Arc::clone(self.dirs[into].lane()),
            fail: self.fail_tx.clone(),
            done: self.done.clone().expect("endpoints attach before shutdown"),
            give_up: self.give_up.clone(),
        };
        let out = spawn_writer(running.outbox, writing).map_err(setup("the writer thread"))?;
        self.dirs[into].connect(out);
        if let Some(old) = self.stops[side].replace(running.stop) {
            old.stop(Instant::now() + STOP_GRACE);
        }
        match settle {
            Some(time) => self.dirs[into].settle(time, running.direct),
            None => self.dirs[into].release(running.direct),
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
                    let current = self
                        .reconnect
                        .as_ref()
                        .map_or(0, |r| r.generation(failure.side));
                    if failure.generation == current {
                        self.lose(failure.side, failure.error)?;
                    }
                }
                Event::Reopened(side, endpoint) => self.restore(side, endpoint)?,
                Event::Received(side, Some(delivery)) => {
                    if let Err(source) = self.dirs[side].receive(delivery) {
                        let endpoint = self.names[side].clone();
                        self.lose(side, Error::Read { endpoint, source })?;
                    }
                }
                Event::Received(side, None) => {
                    // Closed: every delivery it sent has been received.
                    let endpoint = self.names[side].clone();
                    if self.ends_input[side] {
                        info!("{endpoint}: end of input");
                        return Ok(End::Input);
                    }
                    self.lose(side, Error::Closed { endpoint })?;
                }
                // The writer ended; its failure is on the way.
                Event::Sent(side, result) => self.dirs[side].sent(result),
                Event::Timer => {
                    let now = Instant::now();
                    for side in Side::BOTH {
                        if let Some(source) = self.dirs[side].flush(now) {
                            let endpoint = self.names[side].clone();
                            self.lose(side, Error::Read { endpoint, source })?;
                        }
                        self.dirs[side].end_settling(now, false);
                    }
                    self.log_stats(now);
                }
            }
        }
    }

    /// Waits for the first event; see [`super::select`].
    fn wait(&mut self) -> Event {
        // Held batches leave their directions while the select borrows them.
        let mut held: Pair<Option<Batch>> = Pair::new(|side| self.dirs[side].take_held());
        let inputs = Inputs {
            stop: &self.stop,
            failures: &self.fail_rx,
            reopened: self.reconnect.as_ref().map(Reconnect::rx),
        };
        let event = wait(&inputs, &self.dirs, &mut held, self.stats_at);
        for side in Side::BOTH {
            self.dirs[side].put_held(held[side].take());
        }
        event
    }

    /// `--stats`: one line per direction, and the time of the next.
    fn log_stats(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.stats_at, self.options.stats) else {
            return;
        };
        if now < at {
            return;
        }
        let reconnects = self.reconnect.as_ref().map(Reconnect::reconnects);
        for dir in &self.dirs.0 {
            info!("{}", dir.traffic(reconnects));
        }
        self.stats_at = Some(Instant::now() + every);
    }

    /// The endpoint on `side` is gone. Without `--reconnect` that ends the bridge with
    /// `error`; with it, the endpoint goes down and is opened again.
    fn lose(&mut self, side: Side, error: Error) -> Result<(), Error> {
        let Some(reconnect) = &self.reconnect else {
            return Err(error);
        };
        if !reconnect.is_down(side) {
            warn!("{error}; reconnecting");
            self.go_down(side);
        }
        Ok(())
    }

    /// Marks `side` down and starts opening it again: what it sent before it went still
    /// goes on, and lines for it wait in a backlog.
    fn go_down(&mut self, side: Side) {
        let Some(reconnect) = &mut self.reconnect else {
            return;
        };
        if !reconnect.lost(side) {
            return;
        }
        self.dirs[side].sources_gone(SHUTDOWN_GRACE);
        self.dirs[side.other()].destination_gone();
    }

    /// The endpoint on `side` is open again: new threads, and its backlog goes out
    /// first (after it settles, if it asks to).
    fn restore(&mut self, side: Side, endpoint: Endpoint) -> Result<(), Error> {
        let Some(reconnect) = &mut self.reconnect else {
            return Ok(());
        };
        let since = reconnect.back(side);
        let name = &self.names[side];
        info!("{name}: back after {:.1} s", since.as_secs_f64());
        self.attach(side, endpoint)
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
        self.dirs.0.iter().for_each(Direction::stop);
        let mut patience = Patience::new(patient, &self.stop);
        let now = Instant::now();
        for side in Side::BOTH {
            self.dirs[side.other()].end_settling(now, true);
        }
        for side in Side::BOTH {
            let deadline = patience.deadline();
            self.dirs[side].hand_over(deadline, || !patience.over());
        }
        self.done = None;
        wait_for_writers(&self.done_rx, &mut patience, &self.give_up);
        let reconnects = self.reconnect.as_ref().map(Reconnect::reconnects);
        for dir in &self.dirs.0 {
            info!("{}", dir.summary(reconnects));
        }
        // Listeners stop taking clients, connections say goodbye, pty links go.
        for side in Side::BOTH {
            if let Some(stop) = self.stops[side].take() {
                stop.stop(Instant::now() + STOP_GRACE);
            }
        }
    }
}
