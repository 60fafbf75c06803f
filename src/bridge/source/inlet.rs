//! One source's way in: the [`endpoint::Inlet`] an endpoint feeds, opened from the
//! direction's [`Sources`] (the bridge's [`endpoint::Inbox`]). It frames what it is
//! fed under its source's mutex, counts it, routes it through the direction's
//! lane, and sends what is left to the dispatcher as one [`Delivery`]; it ends the
//! line a client leaves in the middle of, and its source when it goes.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_channel::{SendError, Sender};
use log::{log_enabled, warn};

use super::{Delivery, Pieces, Shared, Source, Sources, State};
use crate::bridge::handoff::{Machine, Received};
use crate::bridge::lane::InTurn;
use crate::bridge::trace;
use crate::endpoint;
use crate::framing::{Batch, Framer, Framing};

impl Sources {
    /// Opens a source named `name` (for messages about it); a `client` among others
    /// has a line it stops in the middle of ended (see [`endpoint::Inbox::open_client`]).
    pub fn inlet(&self, name: &str, client: bool) -> SourceInlet {
        let shared = &self.shared;
        let mut sources = shared.sources();
        let source = Arc::new(Source {
            name: name.to_string(),
            origin: self.origin,
            tally: self.tally.clone(),
            state: Mutex::new(State {
                framer: Framer::new(&shared.framing),
                machine: Machine::new(sources.1, shared.announce, Instant::now()),
                warned: false,
                begun: false,
            }),
            received: Received::default(),
        });
        sources.0.push(Arc::clone(&source));
        SourceInlet {
            shared: Arc::clone(shared),
            source,
            tx: self.tx.clone(),
            tail: Vec::new(),
            label: Arc::clone(&self.label),
            _alive: self.alive.clone(),
            client: client || shared.clients,
        }
    }
}

impl endpoint::Inbox for Sources {
    fn open(&self, name: &str) -> Box<dyn endpoint::Inlet> {
        Box::new(self.inlet(name, false))
    }

    fn open_client(&self, name: &str) -> Box<dyn endpoint::Inlet> {
        Box::new(self.inlet(name, true))
    }
}

/// One source's way in: the bridge's [`endpoint::Inlet`].
pub struct SourceInlet {
    shared: Arc<Shared>,
    source: Arc<Source>,
    tx: Sender<Delivery>,
    /// The last bytes fed since the last message ended, as many as the delimiter has.
    tail: Vec<u8>,
    /// `A -> B`, for logs.
    label: Arc<str>,
    /// Dropped last, after the partial line went on: see [`Sources`].
    _alive: Sender<()>,
    /// A client among others: see [`endpoint::Inbox::open_client`].
    client: bool,
}

impl SourceInlet {
    /// Hands `batch` on through the lane; `state` is this source's, locked. Returns
    /// false if the dispatcher is gone.
    fn pass(&self, mut state: MutexGuard<'_, State>, mut batch: Batch) -> bool {
        let partial = state.framer.pending() > 0;
        // It leaves its line unfinished at the destination: it holds the turn.
        let open = state.begun && state.machine.is_open();
        let Some(route) = state.machine.route(!batch.is_empty(), partial) else {
            return true;
        };
        drop(state);
        if let Some(tally) = &self.source.tally {
            tally.add(batch.pieces(), batch.bytes().len());
        }
        let logged = log_enabled!(log::Level::Debug).then(|| batch.clone());
        // Another source's over-long line under way goes first (see `turn.rs`).
        let turn = match &self.shared.framing {
            Framing::Lines { delimiter, .. } => Some(InTurn {
                source: Arc::as_ptr(&self.source) as usize as u64,
                open,
                end: delimiter,
            }),
            Framing::Raw => None,
        };
        let mut sent = self.shared.lane.route_in_turn(turn, &mut batch, |rest| {
            if rest.is_empty() && !route.news {
                return true;
            }
            self.source.lock().machine.count(route);
            self.send(std::mem::take(rest), partial)
        });
        // Routing ends only now, after a send that may have waited for room in the
        // channel. Until then the source was held back, not silent: the silence that
        // `--flush-after` waits for counts from here.
        if self.source.lock().machine.end_route(Instant::now()) {
            sent &= self.send(Batch::default(), partial);
        }
        if let Some(batch) = logged {
            trace::pieces(&self.label, &batch, self.shared.hex);
        }
        sent
    }

    /// Sends `batch` to the dispatcher (counted before). If the dispatcher is gone, its
    /// bytes are counted as lost, so the lane's accounts still add up.
    fn send(&self, batch: Batch, partial: bool) -> bool {
        let delivery = Delivery {
            source: Arc::clone(&self.source),
            content: Ok(Pieces { batch, partial }),
        };
        match self.tx.send(delivery) {
            Ok(()) => true,
            Err(SendError(delivery)) => {
                if let Ok(pieces) = delivery.content {
                    let lost = pieces.batch;
                    self.shared.lane.lost(lost.pieces(), lost.bytes().len());
                }
                false
            }
        }
    }

    /// Keeps the last bytes fed, as many as the delimiter has, for `end_line`.
    fn remember_tail(&mut self, data: &[u8]) {
        let Framing::Lines { delimiter, .. } = &self.shared.framing else {
            return;
        };
        let keep = delimiter.len();
        if data.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.tail.extend_from_slice(data);
            let extra = self.tail.len().saturating_sub(keep);
            self.tail.drain(..extra);
        }
    }

    /// Ends the line under way where it stands (the delimiter goes after what was fed),
    /// counted as cut short, if pieces of it went on already, or with `pending`, if any
    /// of it was fed; false if not (or raw framing).
    fn end_cut_line(&mut self, why: &str, pending: bool) -> bool {
        let Framing::Lines { delimiter, .. } = &self.shared.framing else {
            return false;
        };
        let delimiter = delimiter.clone();
        {
            let state = self.source.lock();
            if !state.begun && (!pending || state.framer.pending() == 0) {
                return false;
            }
        }
        endpoint::Inlet::feed(self, &delimiter);
        self.tail.clear();
        self.shared.short.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "{}: {why} in the middle of a line; ended it there, so the next line does not \
             join it",
            self.source.name
        );
        true
    }

    /// Ends the source: its partial line goes on, and it takes no more. A client's is
    /// ended with the delimiter first, as the direction goes on without it.
    fn finish(&mut self) {
        if self.client && self.source.lock().machine.is_open() {
            self.end_cut_line("left", true);
        }
        let mut state = self.source.lock();
        if !state.machine.close() {
            return;
        }
        let mut rest = Batch::default();
        state.framer.take_partial(&mut rest);
        self.pass(state, rest);
    }
}

impl SourceInlet {
    /// Frames `data` and hands on what it completes; with `now`, also what is left of
    /// a line (see [`endpoint::Inlet::feed_now`]).
    fn frame(&mut self, data: &[u8], now: bool) -> bool {
        self.remember_tail(data);
        let mut state = self.source.lock();
        if !state.machine.read(Instant::now()) {
            return false;
        }
        let cuts = state.framer.cuts();
        let mut batch = Batch::with_capacity(data.len() + state.framer.pending());
        state.framer.feed(data, &mut batch);
        if now {
            state.framer.take_partial(&mut batch);
        }
        let cut = state.framer.cuts() - cuts;
        if let (Some(last), Framing::Lines { delimiter, .. }) = (batch.last(), &self.shared.framing)
        {
            // What goes on now is whole as it stands: nothing of it waits here.
            state.begun = !now && !last.ends_with(delimiter);
        }
        let warn_now = cut > 0 && !state.warned;
        state.warned |= warn_now;
        if cut > 0 {
            self.shared.cuts.fetch_add(cut, Ordering::Relaxed);
        }
        let passed = self.pass(state, batch);
        if warn_now {
            warn!(
                "{}: a line is longer than --max-line; forwarding it in pieces",
                self.source.name
            );
        }
        passed
    }
}

impl endpoint::Inlet for SourceInlet {
    fn feed(&mut self, data: &[u8]) -> bool {
        self.frame(data, false)
    }

    fn feed_now(&mut self, data: &[u8]) -> bool {
        self.frame(data, true)
    }

    fn end_line(&mut self) -> bool {
        let Framing::Lines { delimiter, .. } = &self.shared.framing else {
            return true;
        };
        let ended = self.tail == *delimiter;
        self.tail.clear();
        if ended {
            return true;
        }
        let delimiter = delimiter.clone();
        let fed = self.feed(&delimiter);
        self.tail.clear();
        fed
    }

    /// One feed, the delimiter added in it when needed, so that a stop can never fall
    /// between a message and its line end.
    fn message(&mut self, data: &[u8]) -> bool {
        let Framing::Lines { delimiter, .. } = &self.shared.framing else {
            return self.feed(data);
        };
        let mut tail = std::mem::take(&mut self.tail);
        tail.extend_from_slice(&data[data.len().saturating_sub(delimiter.len())..]);
        let fed = match tail.ends_with(delimiter) {
            true => self.feed(data),
            false => self.feed(&[data, delimiter.as_slice()].concat()),
        };
        self.tail.clear();
        fed
    }

    fn missed(&mut self, count: u64) {
        self.shared.lane.missed(count);
        if let Some(tally) = &self.source.tally {
            tally.missed.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn drop_partial(&mut self) {
        if self.end_cut_line("a message was cut off", false) {
            return;
        }
        let mut state = self.source.lock();
        let mut gone = Batch::default();
        state.framer.take_partial(&mut gone);
        self.tail.clear();
        if !gone.is_empty() {
            log::debug!(
                "{}: dropped {} of a message it never finished",
                self.source.name,
                crate::words::count(gone.bytes().len() as u64, "byte")
            );
        }
    }

    fn fail(mut self: Box<Self>, error: io::Error) {
        self.finish();
        self.source.lock().machine.fail();
        let delivery = Delivery {
            source: Arc::clone(&self.source),
            content: Err(error),
        };
        let _ = self.tx.send(delivery);
    }
}

impl Drop for SourceInlet {
    fn drop(&mut self) {
        self.finish();
        let mut sources = self.shared.sources();
        sources.0.retain(|s| !Arc::ptr_eq(s, &self.source));
    }
}

#[cfg(test)]
impl SourceInlet {
    /// Its source, for tests that watch it.
    pub(super) fn source(&self) -> &Arc<Source> {
        &self.source
    }
}
