//! The dispatcher's end of a direction's sources: receiving what they send, and taking
//! their partial lines in order.
//!
//! The dispatcher takes an unfinished line straight from a source's framer (at a stop,
//! when a source closes, after `--flush-after` of silence), so a reader blocked in
//! `read` never holds data hostage and never needs waking: an idle bridge does not wake
//! up at all. Order is kept by counting (see [`super::reader`]): for each source whose
//! partial line is due, the dispatcher snapshots its count of messages sent at a moment
//! it is not routing and takes the line, receives until each count is met, and only
//! then appends the partial lines. Any rest of a line that a source cut short on the
//! fast path is thus queued before them, and a taken line counts as outstanding in the
//! lane before the source's mutex is released, so the source's next batch queues
//! behind it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::lane::Lane;
use super::reader::{Chunk, Inbox, Message, Shared};
use super::{Options, trace};
use crate::framing::Batch;

/// With `--flush-after`, how soon to look again at most often when a source is
/// writing straight through and partial lines must wait for it.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// The dispatcher's end of a direction's sources.
pub struct Feed {
    shared: Arc<Shared>,
    rx: Receiver<Message>,
}

/// Which partial lines [`Feed::take`] takes.
#[derive(Debug, Clone, Copy)]
pub enum Take {
    /// Every source's, and the sources close: a stop, or the endpoint going away.
    All,
    /// Those of sources silent this long (`--flush-after`).
    Silent(Duration),
}

/// What [`Feed::take`] gathered.
#[derive(Debug, Default)]
pub struct Taken {
    /// The messages received meanwhile, then the partial lines.
    pub batch: Batch,
    /// A source's read error received meanwhile.
    pub error: Option<io::Error>,
    /// With [`Take::Silent`], when a partial line not yet due will be.
    pub next: Option<Instant>,
}

impl Taken {
    /// A partial line not yet due will be at `at`: the earliest such time is `next`.
    fn look_at(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }
}

impl Feed {
    /// A new set of sources for the direction `label`, writing through `lane`.
    pub fn new(label: &str, lane: &Arc<Lane>, options: &Options) -> (Feed, Inbox) {
        let (shared, tx, rx) = Shared::new(label, lane, options);
        let inbox = Inbox {
            shared: Arc::clone(&shared),
            tx,
        };
        (Feed { shared, rx }, inbox)
    }

    /// The channel to select on.
    pub fn rx(&self) -> &Receiver<Message> {
        &self.rx
    }

    /// Takes a received message's content, counting it as received.
    pub fn accept(&self, message: Message) -> io::Result<Chunk> {
        message.source.received.fetch_add(1, Ordering::Release);
        message.body
    }

    /// Bytes of partial lines still in the sources' framers: read, and not handed on
    /// (a stop whose grace ran out before a source was done routing leaves them).
    pub fn unsent(&self) -> u64 {
        let sources = self.shared.sources().0.clone();
        sources
            .iter()
            .map(|source| source.lock().framer.pending() as u64)
            .sum()
    }

    /// Over-long lines cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }

    /// Takes partial lines as `how` says, after every message each source counted
    /// before; see the module documentation. Waits for messages until `deadline`.
    ///
    /// A due source that is routing (waiting for room in a full destination, or in
    /// the channel) is never polled: it is marked wanted and says when it is done.
    /// [`Take::All`] waits for that (at a stop or a departure the lane ends such waits).
    /// [`Take::Silent`] takes nothing while any source holds the route, as it may be in
    /// the middle of a line, and says when to look again (`--flush-after` later, at
    /// most every [`BUSY_RETRY`]); a source that finishes routing meanwhile re-arms the
    /// timer with its message.
    pub fn take(&self, how: Take, deadline: Option<Instant>) -> Taken {
        let now = Instant::now();
        let all = matches!(how, Take::All);
        let mut taken = Taken::default();
        // A source writing straight through may be in the middle of a line: a partial
        // line queued now could be written inside it. So `--flush-after` waits until no
        // source holds the route (a stop or a departure waits for the routing sources
        // to finish instead, below, before handing anything on).
        let mut route = None;
        if let Take::Silent(after) = how {
            route = self.shared.lane.try_route();
            if route.is_none() {
                taken.next = Some(now + after.max(BUSY_RETRY));
                return taken;
            }
        }
        let mut todo = {
            let mut sources = self.shared.sources();
            sources.1 |= all;
            sources.0.clone()
        };
        let mut waits = Vec::new();
        let mut partials = Batch::default();
        loop {
            todo.retain(|source| {
                let mut state = source.lock();
                if let Take::Silent(after) = how {
                    if state.framer.pending() == 0 {
                        state.announced = false;
                        return false;
                    }
                    let at = state.last_read + after;
                    if at > now {
                        taken.look_at(at);
                        return false;
                    }
                }
                if state.routing {
                    state.wanted = true;
                    return all;
                }
                let before = partials.bytes().len();
                state.framer.take_partial(&mut partials);
                state.announced = false;
                // Counted before the mutex goes: the source's next batch queues.
                self.shared.lane.queued(partials.bytes().len() - before);
                state.closed |= all;
                waits.push((Arc::clone(source), state.sent));
                false
            });
            // Taken and counted as outstanding: sources may route again.
            drop(route.take());
            waits.retain(|(source, sent)| source.received.load(Ordering::Acquire) < *sent);
            if todo.is_empty() && waits.is_empty() {
                break;
            }
            let message = match deadline {
                Some(deadline) => self.rx.recv_deadline(deadline),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match message {
                Ok(message) => self.gather(message, how, &mut taken),
                Err(_) => break,
            }
        }
        if all {
            // Sources that ended meanwhile left their last messages in the channel.
            while let Ok(message) = self.rx.try_recv() {
                self.gather(message, how, &mut taken);
            }
        }
        trace::pieces(&self.shared.label, &partials, self.shared.hex);
        taken.batch.append(partials);
        taken
    }

    /// A message received while taking: its pieces go first. A partial line it
    /// announces that is still there (not one taken just now) sets the timer, as it
    /// would have had the dispatcher received the message itself.
    fn gather(&self, message: Message, how: Take, taken: &mut Taken) {
        let source = Arc::clone(&message.source);
        match self.accept(message) {
            Ok(chunk) => {
                if let (true, Take::Silent(after)) = (chunk.partial, how) {
                    let state = source.lock();
                    if state.framer.pending() > 0 {
                        let at = state.last_read + after;
                        taken.look_at(at);
                    }
                }
                taken.batch.append(chunk.batch);
            }
            Err(e) => taken.error = Some(e),
        }
    }
}
