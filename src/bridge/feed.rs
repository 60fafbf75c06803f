//! The dispatcher's end of a direction's sources: receiving their deliveries, and
//! gathering their partial lines in order ([`Feed::gather`]; the rules are in
//! [`super::handoff`]).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::handoff::{Mark, Partials, Taking};
use super::lane::Lane;
use super::source::{Delivery, Failed, Owner, Pieces, Source, Sources, Watch};
use crate::framing::{Batch, Framing};

/// With `--flush-after`, how soon to look again at most often when a source holds the
/// route and partial lines must wait for it.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// The dispatcher's end of a direction's sources.
pub struct Feed {
    watch: Watch,
    rx: Receiver<Delivery>,
    /// Deliveries received so far, from every source.
    received: Cell<u64>,
}

/// What [`Feed::gather`] gathered.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The pieces received meanwhile, with the partial lines in their place.
    pub batch: Batch,
    /// A source's read error received meanwhile.
    pub error: Option<Failed>,
    /// With [`Partials::Silent`], when a partial line not yet due will be.
    pub next: Option<Instant>,
}

impl Gathered {
    /// A partial line not yet due will be at `at`: the earliest such time is `next`.
    fn look_at(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }
}

/// A partial line taken, waiting for its place.
struct Taken {
    source: Arc<Source>,
    batch: Batch,
    mark: Mark,
}

impl Feed {
    /// New sources for the direction `label`, writing through `lane`: the dispatcher's
    /// end, and the first endpoint's (`owner`). With `announce`, sources tell when a
    /// partial line appears (`--flush-after`).
    pub fn new(
        label: &str,
        lane: &Arc<Lane>,
        framing: &Framing,
        hex: bool,
        announce: bool,
        owner: Owner,
    ) -> (Feed, Sources) {
        let (sources, watch, rx) = Sources::new(label, lane, framing, hex, announce, owner);
        let feed = Feed {
            watch,
            rx,
            received: Cell::new(0),
        };
        (feed, sources)
    }

    /// Another endpoint's sources in this direction.
    pub fn sources(&self, owner: Owner) -> Sources {
        Sources::handle(&self.watch, owner)
    }

    /// The channel to select on.
    pub fn rx(&self) -> &Receiver<Delivery> {
        &self.rx
    }

    /// A delivery's content, counted as received.
    pub fn accept(&self, delivery: Delivery) -> Result<Pieces, Failed> {
        self.received.set(self.received.get() + 1);
        delivery.accept()
    }

    /// Bytes of partial lines still in the sources' framers: read, and not handed on
    /// (a stop whose grace ran out before a source was done routing leaves them).
    pub fn unsent(&self) -> u64 {
        let sources = self.watch.sources(false);
        sources.iter().map(|source| source.pending() as u64).sum()
    }

    /// Over-long lines cut so far.
    pub fn cuts(&self) -> u64 {
        self.watch.cuts()
    }

    /// Lines the bridge ended because their source stopped in the middle of them.
    pub fn short(&self) -> u64 {
        self.watch.short()
    }

    /// Takes partial lines as `which` says and places them after what must go first
    /// (see [`super::handoff`]); waits for deliveries until `deadline`.
    ///
    /// A due source that is routing is never polled: it is marked wanted and says when
    /// it is done. [`Partials::All`] waits for that (at a stop or a departure the lane
    /// ends such waits). [`Partials::Silent`] takes nothing while any source holds the
    /// route, as it may be in the middle of a line, and says when to look again
    /// (`--flush-after` later, at most every [`BUSY_RETRY`]); a source that finishes
    /// routing meanwhile re-arms the timer with its delivery.
    pub fn gather(&self, which: Partials, deadline: Option<Instant>) -> Gathered {
        let now = Instant::now();
        let all = which == Partials::All;
        let lane = self.watch.lane();
        let mut gathered = Gathered::default();
        let mut route = None;
        if let Partials::Silent(after) = which {
            // Not while a source is in the middle of an over-long line, either.
            route = lane.try_route().filter(|_| !lane.turn().is_held());
            if route.is_none() {
                gathered.next = Some(now + after.max(BUSY_RETRY));
                return gathered;
            }
        }
        // What is in the channel now goes before any partial line: the rest of a line
        // cut on the direct route may be among it.
        let ahead = self.received.get() + self.rx.len() as u64;
        let mut todo = self.watch.sources(all);
        let mut taken: Vec<Taken> = Vec::new();
        loop {
            todo.retain(|source| {
                let mut batch = Batch::default();
                match source.take(which, now, &mut batch, lane) {
                    Taking::Nothing => false,
                    Taking::Later(at) => {
                        gathered.look_at(at);
                        false
                    }
                    Taking::Busy => all,
                    Taking::Now(mark) => {
                        let source = Arc::clone(source);
                        taken.push(Taken {
                            source,
                            batch,
                            mark,
                        });
                        false
                    }
                }
            });
            // Taken and counted as queued: sources may route again.
            drop(route.take());
            if todo.is_empty() && self.received.get() >= ahead {
                self.place(&mut taken, all, &mut gathered.batch);
            }
            if todo.is_empty() && taken.is_empty() {
                break;
            }
            let delivery = match deadline {
                Some(deadline) => self.rx.recv_deadline(deadline),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match delivery {
                Ok(delivery) => self.receive(delivery, which, &mut gathered),
                Err(_) => break,
            }
        }
        if all {
            // Sources that ended meanwhile left their last deliveries in the channel.
            while let Ok(delivery) = self.rx.try_recv() {
                self.receive(delivery, which, &mut gathered);
            }
        }
        // Time ran out: what is left goes last, rather than not at all.
        for t in taken {
            self.watch.trace(&t.batch);
            gathered.batch.append(t.batch);
        }
        gathered
    }

    /// Appends each taken partial line whose source's deliveries before it are all
    /// received; with `together`, none until all are (at a stop every source is taken,
    /// and a line cut on the direct route is finished by one of them).
    fn place(&self, taken: &mut Vec<Taken>, together: bool, batch: &mut Batch) {
        if together && !taken.iter().all(|t| t.source.reached(t.mark)) {
            return;
        }
        taken.retain_mut(|t| {
            if !t.source.reached(t.mark) {
                return true;
            }
            let line = std::mem::take(&mut t.batch);
            self.watch.trace(&line);
            batch.append(line);
            false
        });
    }

    /// A delivery received while gathering: its pieces go next. A partial line it
    /// announces that is still there (not one taken just now) sets the timer, as it
    /// would have had the dispatcher received the delivery itself.
    fn receive(&self, delivery: Delivery, which: Partials, gathered: &mut Gathered) {
        let due = match (which, &delivery) {
            (Partials::Silent(after), _) => delivery.due(after),
            _ => None,
        };
        match self.accept(delivery) {
            Ok(pieces) => {
                if let (true, Some(at)) = (pieces.partial, due) {
                    gathered.look_at(at);
                }
                gathered.batch.append(pieces.batch);
            }
            Err(e) => gathered.error = Some(e),
        }
    }
}
