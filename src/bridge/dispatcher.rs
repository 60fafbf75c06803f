//! The dispatcher: the select loop, and the state it owns.
//!
//! It runs on the caller's thread and selects over the stop channel, writer failures,
//! reopened endpoints (`--reconnect`) and, for each direction, either *sending* its held
//! batch to the destination's writer or *receiving* the next message from its sources:
//! a direction that holds a batch stops taking more until the writer has room, which
//! is how a slow port holds back only its own direction. Because the set of arms
//! changes with that state it uses crossbeam's `Select`, the builder `select!` expands
//! to. Timers (`--flush-after`, `settle=`, `--stats`) set the select's deadline; a due
//! timer goes first, so a busy bridge still flushes, settles and reports.
//!
//! The dispatcher alone decides when to stop; [`super::shutdown`] then forwards what
//! was read. Reconnecting and settling live in [`super::reconnect`].

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, SendError, Sender, bounded};
use log::{info, warn};

use super::feed::{Feed, Take};
use super::lane::Lane;
use super::reader::Message;
use super::reconnect::{Backlog, Reconnect, Settling};
use super::shutdown::STOP_GRACE;
use super::writer::{Failure, Writing, spawn_writer};
use super::{Ends, Options, Pair, Side, Traffic, trace};
use crate::endpoint::{Endpoint, GiveUp, Stop};
use crate::error::Error;
use crate::framing::Batch;

/// Writer failures waiting for the dispatcher: one per writer at most.
const FAILURE_QUEUE: usize = 4;

/// One direction, named by the side it reads from, as the dispatcher sees it.
pub struct Direction {
    /// `A -> B`, for logs.
    pub label: String,
    /// Its sources; `None` while the side it reads from is down.
    pub feed: Option<Feed>,
    /// A batch waiting for room in the writer's queue.
    pub held: Option<Batch>,
    /// When to look at partial lines for `--flush-after`.
    pub flush_at: Option<Instant>,
    pub lane: Arc<Lane>,
    /// The destination's writer queue; `None` while it is down, and once shutdown lets
    /// the writer finish.
    pub out: Option<Sender<Batch>>,
    /// While the destination is down or settling: the pieces waiting for it.
    pub backlog: Option<Backlog>,
    /// While the destination settles after opening.
    pub settling: Option<Settling>,
    /// Over-long lines cut by sources replaced since (a reconnect).
    pub cuts: u64,
}

/// Why forwarding ended without a failure.
pub enum End {
    /// A stop signal.
    Stop,
    /// A source whose EOF is a normal end (stdin) reached it.
    Input,
}

/// What woke the dispatcher.
enum Event {
    Stop,
    Failed(Failure),
    Received(Side, Option<Message>),
    Sent(Side, Result<(), SendError<Batch>>),
    /// A lost endpoint opened again (`--reconnect`).
    Reopened(Side, Endpoint),
    Timer,
}

/// The bridge's state while it runs.
pub struct Dispatcher {
    pub dirs: Pair<Direction>,
    pub ends: Pair<Ends>,
    pub options: Options,
    pub stop: Receiver<()>,
    fail_tx: Sender<Failure>,
    fail_rx: Receiver<Failure>,
    /// Cloned into every writer; dropped at shutdown so `done_rx` can tell when the
    /// last writer has ended.
    pub done: Option<Sender<()>>,
    pub done_rx: Receiver<()>,
    /// Set at shutdown when writers should stop waiting for a stuck port.
    pub give_up: GiveUp,
    /// With `--reconnect`.
    pub reconnect: Option<Reconnect>,
    /// How to stop each endpoint, kept until the bridge ends or the endpoint goes.
    pub stops: Pair<Option<Box<dyn Stop>>>,
    /// When to log the next `--stats` line.
    pub stats_at: Option<Instant>,
}

impl Dispatcher {
    /// Bridges the `opened` endpoints (a missing one is down and waited for) until a
    /// stop, the end of input or a failure; then shuts down.
    pub fn start(
        opened: Pair<Option<Endpoint>>,
        ends: Pair<Ends>,
        options: &Options,
        stop: Receiver<()>,
        reconnect: Option<Reconnect>,
    ) -> Result<[Traffic; 2], Error> {
        let (a, b) = (&ends[Side::A].name, &ends[Side::B].name);
        info!(
            "bridging {a} <-> {b} ({})",
            trace::framing(&options.framing)
        );
        let (fail_tx, fail_rx) = bounded(FAILURE_QUEUE);
        let (done, done_rx) = bounded(0);
        let dirs = Pair::new(|side| Direction {
            label: format!("{} -> {}", ends[side].name, ends[side.other()].name),
            feed: None,
            held: None,
            flush_at: None,
            lane: Arc::default(),
            out: None,
            backlog: None,
            settling: None,
            cuts: 0,
        });
        let mut dispatcher = Dispatcher {
            dirs,
            ends,
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
        outcome.map(|_| dispatcher.dirs.0.each_ref().map(|dir| dir.lane.traffic()))
    }

    /// Starts moving data for the open `endpoint` on `side`: its sources feed direction
    /// `side`, and a writer takes direction `side.other()`'s batches to it.
    pub fn attach(&mut self, side: Side, endpoint: Endpoint) -> Result<(), Error> {
        let name = self.ends[side].name.clone();
        self.ends[side].eof_is_end = endpoint.ends_input();
        self.ends[side].settle = endpoint.settle();
        let into = side.other();
        let dir = &self.dirs[side];
        let (feed, inbox) = Feed::new(&dir.label, &dir.lane, &self.options);
        let setup = |what: &str| {
            let what = format!("cannot start {what} for {name}");
            move |source| Error::Setup { what, source }
        };
        let running = endpoint
            .start(Box::new(inbox), self.give_up.clone())
            .map_err(setup("threads"))?;
        let dir = &mut self.dirs[side];
        if let Some(old) = dir.feed.replace(feed) {
            dir.cuts += old.cuts();
        }
        dir.flush_at = None;
        let writing = Writing {
            name: name.clone(),
            side,
            generation: self.reconnect.as_ref().map_or(0, |r| r.generation(side)),
            lane: Arc::clone(&self.dirs[into].lane),
            fail: self.fail_tx.clone(),
            done: self.done.clone().expect("endpoints attach before shutdown"),
            give_up: self.give_up.clone(),
        };
        let out = spawn_writer(running.outbox, writing).map_err(setup("the writer thread"))?;
        self.dirs[into].out = Some(out);
        if let Some(old) = self.stops[side].replace(running.stop) {
            old.stop(Instant::now() + STOP_GRACE);
        }
        match self.ends[side].settle {
            Some(time) => self.settle(side, time, running.direct),
            None => self.release(side, running.direct),
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
                Event::Received(side, Some(message)) => {
                    let dir = &mut self.dirs[side];
                    let feed = dir
                        .feed
                        .as_ref()
                        .expect("a direction receives while it has sources");
                    match feed.accept(message) {
                        Ok(chunk) => {
                            if chunk.partial && dir.flush_at.is_none() {
                                dir.flush_at = self.options.flush_after.map(|d| Instant::now() + d);
                            }
                            self.hold(side, chunk.batch);
                        }
                        Err(source) => {
                            let endpoint = self.ends[side].name.clone();
                            self.lose(side, Error::Read { endpoint, source })?;
                        }
                    }
                }
                Event::Received(side, None) => {
                    // Closed: every message it sent has been received.
                    let endpoint = self.ends[side].name.clone();
                    if self.ends[side].eof_is_end {
                        info!("{endpoint}: end of input");
                        return Ok(End::Input);
                    }
                    self.lose(side, Error::Closed { endpoint })?;
                }
                Event::Sent(_, Ok(())) => {}
                Event::Sent(side, Err(SendError(batch))) => {
                    // The writer ended; its failure is on the way. Keep the batch, and
                    // stop offering it to a queue nobody drains.
                    self.dirs[side].held = Some(batch);
                    self.dirs[side].out = None;
                }
                Event::Timer => {
                    self.flush_partials()?;
                    self.end_settling(false);
                    self.log_stats();
                }
            }
        }
    }

    /// Waits for the first ready operation; see the module documentation.
    fn wait(&mut self) -> Event {
        // Held batches leave their directions while the select borrows them.
        let mut held = Pair::new(|side| self.dirs[side].held.take());
        let event = self.select(&mut held);
        for side in Side::BOTH {
            if let Some(batch) = held[side].take() {
                self.dirs[side].held = Some(batch);
            }
        }
        event
    }

    fn select(&self, held: &mut Pair<Option<Batch>>) -> Event {
        let mut sel = Select::new();
        let stop = sel.recv(&self.stop);
        let fail = sel.recv(&self.fail_rx);
        let reopen = self.reconnect.as_ref().map(|r| sel.recv(r.rx()));
        let mut arms = Pair([None, None]);
        for side in Side::BOTH {
            let dir = &self.dirs[side];
            arms[side] = match (&held[side], &dir.out, &dir.feed) {
                (Some(_), Some(out), _) => Some(sel.send(out)),
                (None, _, Some(feed)) => Some(sel.recv(feed.rx())),
                _ => None,
            };
        }
        let deadline = Side::BOTH
            .into_iter()
            .filter(|&side| held[side].is_none())
            .filter_map(|side| self.dirs[side].flush_at)
            .chain(self.stats_at)
            .chain(
                self.dirs
                    .0
                    .iter()
                    .filter_map(|dir| dir.settling.as_ref().map(|s| s.until)),
            )
            .min();
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return Event::Timer;
        }
        let oper = match deadline {
            Some(deadline) => match sel.select_deadline(deadline) {
                Ok(oper) => oper,
                Err(_) => return Event::Timer,
            },
            None => sel.select(),
        };
        let index = oper.index();
        if index == stop {
            // A message or a dropped sender: either way, stop.
            let _ = oper.recv(&self.stop);
            return Event::Stop;
        }
        if index == fail {
            let failure = oper.recv(&self.fail_rx);
            return Event::Failed(failure.expect("the dispatcher keeps a failure sender"));
        }
        if let (Some(reopen), Some(reconnect)) = (reopen, &self.reconnect)
            && index == reopen
        {
            let (side, endpoint) = oper
                .recv(reconnect.rx())
                .expect("the reconnect state keeps a sender");
            return Event::Reopened(side, endpoint);
        }
        let side = Side::BOTH
            .into_iter()
            .find(|&side| arms[side] == Some(index))
            .expect("the selected operation is one of the arms");
        let dir = &self.dirs[side];
        match (held[side].take(), &dir.out, &dir.feed) {
            (Some(batch), Some(out), _) => Event::Sent(side, oper.send(out, batch)),
            (batch, _, Some(feed)) => {
                held[side] = batch;
                Event::Received(side, oper.recv(feed.rx()).ok())
            }
            _ => unreachable!("an arm exists only for a held batch or a feed"),
        }
    }

    /// Holds a batch for its writer or, while the destination is down or settling,
    /// adds its pieces to the backlog, dropping the oldest beyond `--queue`.
    pub fn hold(&mut self, side: Side, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let dir = &mut self.dirs[side];
        match &mut dir.backlog {
            Some(backlog) => {
                if backlog.push(batch, self.options.queue, &dir.lane) {
                    let to = &self.ends[side.other()].name;
                    warn!(
                        "{}: queue full while {to} is down or settling; dropping the oldest \
                         lines (--queue {})",
                        dir.label, self.options.queue
                    );
                }
            }
            None => match &mut dir.held {
                Some(held) => held.append(batch),
                None => dir.held = Some(batch),
            },
        }
    }

    /// `--flush-after`: forwards each partial line whose source has been silent long
    /// enough, and re-arms the timer for the others.
    fn flush_partials(&mut self) -> Result<(), Error> {
        let Some(after) = self.options.flush_after else {
            return Ok(());
        };
        let now = Instant::now();
        for side in Side::BOTH {
            let dir = &mut self.dirs[side];
            match (dir.flush_at, &dir.feed) {
                (Some(at), Some(feed)) if at <= now && dir.held.is_none() => {
                    let taken = feed.take(Take::Silent(after), None);
                    dir.flush_at = taken.next;
                    self.hold(side, taken.batch);
                    if let Some(source) = taken.error {
                        let endpoint = self.ends[side].name.clone();
                        self.lose(side, Error::Read { endpoint, source })?;
                    }
                }
                (_, None) => dir.flush_at = None,
                _ => {}
            }
        }
        Ok(())
    }
}
