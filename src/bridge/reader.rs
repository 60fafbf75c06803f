//! Sources: where a direction's bytes come from, framed and handed on in order.
//!
//! A byte stream gets a named reader thread ([`spawn_reader`]) that owns its read half
//! and pumps it into an inlet. A message endpoint opens inlets itself, one per client,
//! through the [`Inbox`] the bridge gives it. Either way every source is the same
//! machinery: its own [`Framer`] behind a mutex, the direction's [`Lane`] for the fast
//! path, and the direction's bounded channel for what is queued.
//!
//! **Partial lines.** The dispatcher takes an unfinished line straight from a source's
//! framer (at a stop, when a source closes, after `--flush-after` of silence), so a
//! reader blocked in `read` never holds data hostage and never needs waking: an idle
//! bridge does not wake up at all. Order is kept by counting. A source counts each
//! message it sends (`sent`, under its mutex); the dispatcher counts what it receives
//! from each source (`received`). To take partial lines the dispatcher snapshots every
//! source's count at a moment the source is not routing (between framing a read and
//! handing it on, a source is *routing*), receives until each count is met, and only
//! then appends the partial lines. A taken line counts as outstanding in the lane
//! before the source's mutex is released, so the source's next batch queues behind it.
//!
//! Logging and writing happen outside the framer's mutex: a slow log (a paused
//! terminal, a full pipe) never stalls the dispatcher.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use log::{log_enabled, warn};

use super::lane::Lane;
use super::{Options, trace};
use crate::endpoint::{self, Inlet as _};
use crate::framing::{Batch, Framer, Framing};

/// Messages waiting between a direction's sources and the dispatcher. A batch holds a
/// whole read, so a few are enough to keep a port busy; more would only grow memory.
const CHANNEL_CAPACITY: usize = 4;

/// While a source is routing, how long the dispatcher waits before looking again.
/// Routing never waits on anything but the lane's lock, so this is short.
const ROUTING_RETRY: Duration = Duration::from_millis(1);

/// One item on a direction's channel.
pub struct Message {
    source: Arc<Source>,
    body: io::Result<Chunk>,
}

/// What one read completed.
#[derive(Debug)]
pub struct Chunk {
    /// The pieces, or what is left of them after the fast path.
    pub batch: Batch,
    /// A partial line is pending after this read (only said with `--flush-after`).
    pub partial: bool,
}

/// One source of a direction.
struct Source {
    name: String,
    state: Mutex<State>,
    /// Messages the dispatcher has received from this source; only it writes this.
    received: AtomicU64,
}

/// A source's framer and bookkeeping, under its mutex.
struct State {
    framer: Framer,
    /// Messages counted (under this mutex) and then sent.
    sent: u64,
    /// The source hands on nothing more: the bridge is stopping, or it ended.
    closed: bool,
    /// Between framing a read and handing it on.
    routing: bool,
    /// When the last read returned data.
    last_read: Instant,
    /// Whether the dispatcher has been told a partial line is pending.
    announced: bool,
    /// Whether the first over-long line was logged.
    warned: bool,
}

impl Source {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A source never panics while holding its mutex; if one did, the framer still
        // holds whole bytes, so carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a direction's sources share.
struct Shared {
    /// `A -> B`, for logs.
    label: String,
    lane: Arc<Lane>,
    framing: Framing,
    hex: bool,
    /// Tell the dispatcher when a partial line appears (`--flush-after` is set).
    announce: bool,
    /// The live sources, and whether new ones start closed (the bridge is stopping).
    sources: Mutex<(Vec<Arc<Source>>, bool)>,
    /// Over-long lines cut so far, all sources together.
    cuts: AtomicU64,
}

impl Shared {
    fn sources(&self) -> MutexGuard<'_, (Vec<Arc<Source>>, bool)> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The dispatcher's end of a direction's sources.
pub struct Feed {
    shared: Arc<Shared>,
    rx: Receiver<Message>,
}

/// The sources' end: opens them. Once it and every source it opened are gone, the
/// channel disconnects, which the dispatcher takes as "closed".
pub struct Inbox {
    shared: Arc<Shared>,
    tx: Sender<Message>,
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

impl Feed {
    /// A new set of sources for the direction `label`, writing through `lane`.
    pub fn new(label: &str, lane: &Arc<Lane>, options: &Options) -> (Feed, Inbox) {
        let shared = Arc::new(Shared {
            label: label.to_string(),
            lane: Arc::clone(lane),
            framing: options.framing.clone(),
            hex: options.hex,
            announce: options.flush_after.is_some(),
            sources: Mutex::new((Vec::new(), false)),
            cuts: AtomicU64::new(0),
        });
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
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

    /// Over-long lines cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }

    /// Takes partial lines as `how` says, after every message each source counted
    /// before; see the module documentation. Waits for messages until `deadline`.
    pub fn take(&self, how: Take, deadline: Option<Instant>) -> Taken {
        let now = Instant::now();
        let mut taken = Taken::default();
        let due = |state: &State| match how {
            Take::All => true,
            Take::Silent(after) => state.framer.pending() > 0 && state.last_read + after <= now,
        };
        let sources = {
            let mut sources = self.shared.sources();
            sources.1 |= matches!(how, Take::All);
            sources.0.clone()
        };
        if let Take::Silent(after) = how {
            let mut any = false;
            for source in &sources {
                let mut state = source.lock();
                if state.framer.pending() == 0 {
                    state.announced = false;
                } else if due(&state) && !state.routing {
                    any = true;
                } else {
                    let at = (state.last_read + after).max(now + ROUTING_RETRY);
                    taken.next = Some(taken.next.map_or(at, |next| next.min(at)));
                }
            }
            if !any {
                return taken;
            }
        }
        let mut todo = sources;
        let mut waits = Vec::new();
        let mut partials = Batch::default();
        loop {
            todo.retain(|source| {
                let mut state = source.lock();
                if state.routing {
                    return true;
                }
                if due(&state) {
                    let before = partials.bytes().len();
                    state.framer.take_partial(&mut partials);
                    state.announced = false;
                    // Counted before the mutex goes: the source's next batch queues.
                    self.shared.lane.queued(partials.bytes().len() - before);
                }
                state.closed |= matches!(how, Take::All);
                waits.push((Arc::clone(source), state.sent));
                false
            });
            waits.retain(|(source, sent)| source.received.load(Ordering::Acquire) < *sent);
            if todo.is_empty() && waits.is_empty() {
                break;
            }
            let retry = (!todo.is_empty()).then(|| Instant::now() + ROUTING_RETRY);
            let until = match (deadline, retry) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            };
            let message = match until {
                Some(until) => self.rx.recv_deadline(until),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match message {
                Ok(message) => self.gather(message, &mut taken),
                Err(RecvTimeoutError::Timeout)
                    if !todo.is_empty() && deadline.is_none_or(|d| Instant::now() < d) => {}
                Err(_) => break,
            }
        }
        if matches!(how, Take::All) {
            // Sources that ended meanwhile left their last messages in the channel.
            while let Ok(message) = self.rx.try_recv() {
                self.gather(message, &mut taken);
            }
        }
        taken.batch.append(partials);
        taken
    }

    fn gather(&self, message: Message, taken: &mut Taken) {
        match self.accept(message) {
            Ok(chunk) => taken.batch.append(chunk.batch),
            Err(e) => taken.error = Some(e),
        }
    }
}

impl Inbox {
    /// Opens a source named `name` (for messages about it).
    fn inlet(&self, name: &str) -> Inlet {
        let source = Arc::new(Source {
            name: name.to_string(),
            state: Mutex::new(State {
                framer: Framer::new(&self.shared.framing),
                sent: 0,
                closed: false,
                routing: false,
                last_read: Instant::now(),
                announced: false,
                warned: false,
            }),
            received: AtomicU64::new(0),
        });
        {
            let mut sources = self.shared.sources();
            source.lock().closed = sources.1;
            sources.0.push(Arc::clone(&source));
        }
        Inlet {
            shared: Arc::clone(&self.shared),
            source,
            tx: self.tx.clone(),
        }
    }
}

impl endpoint::Inbox for Inbox {
    fn open(&self, name: &str) -> Box<dyn endpoint::Inlet> {
        Box::new(self.inlet(name))
    }
}

/// Starts the reader thread of the byte stream `name`: its read half, pumped into a
/// source of `inbox` until EOF or an error.
pub fn spawn_reader(name: &str, mut reader: Box<dyn Read + Send>, inbox: Inbox) -> io::Result<()> {
    let inlet = inbox.inlet(name);
    // The reader's inlet is the direction's only source: once it ends, the channel
    // disconnects.
    drop(inbox);
    thread::Builder::new()
        .name(format!("read {name}"))
        .spawn(move || {
            let mut inlet = Box::new(inlet);
            if let Err(e) = endpoint::pump(&mut *reader, &mut *inlet) {
                inlet.fail(e);
            }
        })?;
    Ok(())
}

/// One source's way in.
struct Inlet {
    shared: Arc<Shared>,
    source: Arc<Source>,
    tx: Sender<Message>,
}

impl Inlet {
    /// Hands `batch` on through the lane; `state` is this source's, locked. Returns
    /// false if the dispatcher is gone.
    fn pass(&self, mut state: MutexGuard<'_, State>, mut batch: Batch) -> bool {
        let partial = state.framer.pending() > 0;
        let announce = self.shared.announce && partial && !state.announced;
        if batch.is_empty() && !announce {
            return true;
        }
        state.routing = true;
        drop(state);
        let logged = log_enabled!(log::Level::Debug).then(|| batch.clone());
        let sent = self.shared.lane.route(&mut batch, |rest| {
            let mut state = self.source.lock();
            state.routing = false;
            if rest.is_empty() && !announce {
                return true;
            }
            state.sent += 1;
            state.announced = partial && self.shared.announce;
            drop(state);
            let chunk = Chunk {
                batch: std::mem::take(rest),
                partial,
            };
            let message = Message {
                source: Arc::clone(&self.source),
                body: Ok(chunk),
            };
            self.tx.send(message).is_ok()
        });
        if let Some(batch) = logged {
            trace::pieces(&self.shared.label, &batch, self.shared.hex);
        }
        sent
    }

    /// Ends the source: its partial line goes on, and it takes no more.
    fn finish(&mut self) {
        let mut state = self.source.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        let mut rest = Batch::default();
        state.framer.take_partial(&mut rest);
        self.pass(state, rest);
    }
}

impl endpoint::Inlet for Inlet {
    fn feed(&mut self, data: &[u8]) -> bool {
        let mut state = self.source.lock();
        if state.closed {
            return false;
        }
        state.last_read = Instant::now();
        let cuts = state.framer.cuts();
        let mut batch = Batch::with_capacity(data.len() + state.framer.pending());
        state.framer.feed(data, &mut batch);
        let cut = state.framer.cuts() - cuts;
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

    fn message(&mut self, data: &[u8]) -> bool {
        let mut state = self.source.lock();
        if state.closed {
            return false;
        }
        state.last_read = Instant::now();
        // A message is a line of its own; anything fed before it goes first.
        let mut batch = Batch::default();
        state.framer.take_partial(&mut batch);
        match &self.shared.framing {
            Framing::Lines { delimiter, .. } => batch.push(&[data, delimiter].concat()),
            Framing::Raw => batch.push(data),
        }
        self.pass(state, batch)
    }

    fn fail(mut self: Box<Self>, error: io::Error) {
        self.finish();
        let mut state = self.source.lock();
        state.sent += 1;
        drop(state);
        let message = Message {
            source: Arc::clone(&self.source),
            body: Err(error),
        };
        let _ = self.tx.send(message);
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        self.finish();
        let mut sources = self.shared.sources();
        sources.0.retain(|s| !Arc::ptr_eq(s, &self.source));
    }
}
