//! Sources: where a direction's bytes come from, framed and handed on in order.
//!
//! Every source is the same machinery, whether it is a byte stream's reader thread
//! (see [`crate::endpoint::Stream`]) or one client of a server: the endpoint opens it
//! from the direction's [`Sources`] (the bridge's
//! [`endpoint::Inbox`](crate::endpoint::Inbox)) and feeds it through a
//! [`SourceInlet`](inlet::SourceInlet) (`source/inlet.rs`, which opens it too). Each
//! has its own framer and hand-off state under one mutex ([`Source`]), routes what it
//! frames through the direction's [`Lane`], and sends what is left as one [`Delivery`]
//! on the direction's bounded channel. The order rules are in [`super::handoff`].
//!
//! Logging and writing happen outside the mutex: a slow log (a paused terminal, a full
//! pipe) never stalls the dispatcher.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::handoff::{Machine, Partials, Received, Taking};
use super::lane::Lane;
use super::trace;
use crate::framing::{Batch, Framer, Framing};

pub mod inlet;

/// Deliveries waiting between a direction's sources and the dispatcher. A batch holds
/// a whole read, so a few are enough to keep a port busy; more would only grow memory.
const CHANNEL_CAPACITY: usize = 4;

/// One item on a direction's channel: what one read left for the queued route (maybe
/// nothing but the news of a partial line), or the error that ended its source.
pub struct Delivery {
    source: Arc<Source>,
    content: io::Result<Pieces>,
}

/// Which endpoint a source belongs to, and which opening of it (`--reconnect`), so that
/// an error from an endpoint replaced since is known as old news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The endpoint's place on the command line, the device first.
    pub end: usize,
    /// Which opening of it.
    pub generation: u64,
}

/// A source's read error, and whose it is.
#[derive(Debug)]
pub struct Failed {
    /// The endpoint it came from.
    pub origin: Origin,
    /// What happened.
    pub error: io::Error,
}

/// What one endpoint handed into a direction that several endpoints share (the hub's
/// peers, into the device): pieces and bytes taken from it, and messages it lost before
/// it could read them. Kept across its reconnects.
#[derive(Debug, Default)]
pub struct Tally {
    pieces: AtomicU64,
    bytes: AtomicU64,
    missed: AtomicU64,
}

impl Tally {
    fn add(&self, pieces: usize, bytes: usize) {
        self.pieces.fetch_add(pieces as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Pieces and bytes taken so far.
    pub fn taken(&self) -> super::lane::Traffic {
        super::lane::Traffic {
            pieces: self.pieces.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Messages lost before they could be read.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

/// What a read left for the queued route.
#[derive(Debug)]
pub struct Pieces {
    /// The pieces the direct route did not take.
    pub batch: Batch,
    /// A partial line is pending after this read (told only with `--flush-after`).
    pub partial: bool,
}

impl Delivery {
    /// Its content, counted as received.
    pub fn accept(self) -> Result<Pieces, Failed> {
        self.source.received.count();
        let origin = self.source.origin;
        self.content.map_err(|error| Failed { origin, error })
    }

    /// When its source's partial line falls due after `after`, if it has one now.
    pub fn due(&self, after: Duration) -> Option<Instant> {
        let state = self.source.lock();
        state.machine.due(after, state.framer.pending())
    }
}

/// One source of a direction: its framer and hand-off state, and what the dispatcher
/// received from it.
pub struct Source {
    name: String,
    origin: Origin,
    /// Counts what it hands on, where its endpoint shares the direction.
    tally: Option<Arc<Tally>>,
    state: Mutex<State>,
    received: Received,
}

/// A source's state, under its mutex.
struct State {
    framer: Framer,
    machine: Machine,
    /// Whether the first over-long line was logged.
    warned: bool,
    /// Pieces of the line under way went on already (over-long, or a partial line
    /// flushed): it has begun at the destination.
    begun: bool,
}

impl Source {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A source never panics while holding its mutex; if one did, the framer still
        // holds whole bytes, so carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The dispatcher asks for its partial line: see [`Machine::take`]. A line taken is
    /// appended to `into` and counted as queued in `lane` before the mutex goes, so the
    /// source's next batch queues behind it.
    pub fn take(&self, which: Partials, now: Instant, into: &mut Batch, lane: &Lane) -> Taking {
        let mut state = self.lock();
        let pending = state.framer.pending();
        let taking = state.machine.take(which, now, pending);
        if let Taking::Now(_) = taking {
            state.begun = true;
            state.framer.take_partial(into);
            lane.queued(pending);
            if let (Some(tally), true) = (&self.tally, pending > 0) {
                tally.add(1, pending);
            }
        }
        taking
    }

    /// Whether the dispatcher received everything the source counted up to `mark`.
    pub fn reached(&self, mark: super::handoff::Mark) -> bool {
        self.received.reached(mark)
    }

    /// Bytes of a partial line it holds.
    pub fn pending(&self) -> usize {
        self.lock().framer.pending()
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
    /// Lines the bridge ended because their source stopped in the middle of them.
    short: AtomicU64,
    /// Every source is a client among others (a hub's peers into the device): see
    /// [`endpoint::Inbox::open_client`](crate::endpoint::Inbox::open_client).
    clients: bool,
}

impl Shared {
    fn sources(&self) -> MutexGuard<'_, (Vec<Arc<Source>>, bool)> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One endpoint's sources in a direction: it opens them here. Once it and every source
/// it opened are gone, `alive` disconnects, which the dispatcher takes as "closed"
/// (every delivery they sent is in the channel by then).
pub struct Sources {
    shared: Arc<Shared>,
    tx: Sender<Delivery>,
    origin: Origin,
    /// `A -> B`, for the logs of its sources.
    label: Arc<str>,
    tally: Option<Arc<Tally>>,
    alive: Sender<()>,
}

/// How [`Sources::new`] and [`Sources::handle`] tell a new endpoint's sources apart.
pub struct Owner {
    /// Whose they are.
    pub origin: Origin,
    /// `A -> B`, for their logs.
    pub label: String,
    /// Counts what they hand on, where the direction has several endpoints' sources.
    pub tally: Option<Arc<Tally>>,
    /// Held by the handle and each source; dropped with the last of them.
    pub alive: Sender<()>,
    /// The direction has several endpoints' sources (a hub's peers into the device):
    /// every source is a client (see [`endpoint::Inbox::open_client`](crate::endpoint::Inbox::open_client)).
    pub client: bool,
}

/// The dispatcher's view of a direction's sources: see [`super::feed`].
pub struct Watch {
    shared: Arc<Shared>,
    /// For more endpoints' sources ([`Sources::handle`]); so the channel never
    /// disconnects while the dispatcher watches it.
    tx: Sender<Delivery>,
}

impl Sources {
    /// The sources of the direction `label`, writing through `lane`; the dispatcher
    /// watches them, and receives their deliveries from the channel returned. More
    /// endpoints' sources join through [`Sources::handle`].
    pub fn new(
        label: &str,
        lane: &Arc<Lane>,
        framing: &Framing,
        hex: bool,
        announce: bool,
        owner: Owner,
    ) -> (Sources, Watch, Receiver<Delivery>) {
        let shared = Arc::new(Shared {
            label: label.to_string(),
            lane: Arc::clone(lane),
            framing: framing.clone(),
            hex,
            announce,
            sources: Mutex::new((Vec::new(), false)),
            cuts: AtomicU64::new(0),
            short: AtomicU64::new(0),
            clients: owner.client,
        });
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let watch = Watch {
            shared: Arc::clone(&shared),
            tx: tx.clone(),
        };
        (Sources::with(shared, tx, owner), watch, rx)
    }

    fn with(shared: Arc<Shared>, tx: Sender<Delivery>, owner: Owner) -> Sources {
        Sources {
            shared,
            tx,
            origin: owner.origin,
            label: owner.label.into(),
            tally: owner.tally,
            alive: owner.alive,
        }
    }

    /// Another endpoint's sources in the same direction.
    pub fn handle(watch: &Watch, owner: Owner) -> Sources {
        Sources::with(Arc::clone(&watch.shared), watch.tx.clone(), owner)
    }
}

impl Watch {
    /// Every live source; with `closing`, sources opened from now on start closed.
    pub fn sources(&self, closing: bool) -> Vec<Arc<Source>> {
        let mut sources = self.shared.sources();
        sources.1 |= closing;
        sources.0.clone()
    }

    /// The direction's lane.
    pub fn lane(&self) -> &Lane {
        &self.shared.lane
    }

    /// Over-long lines cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }

    /// Lines the bridge ended because their source stopped in the middle of them.
    pub fn short(&self) -> u64 {
        self.shared.short.load(Ordering::Relaxed)
    }

    /// Logs pieces the dispatcher took, as sources log theirs.
    pub fn trace(&self, batch: &Batch) {
        trace::pieces(&self.shared.label, batch, self.shared.hex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint;

    /// A feed and its sources for `A -> B` with `options`.
    pub(super) fn feed_of(lane: &Arc<Lane>, options: &Options) -> (Feed, Sources) {
        let announce = options.flush_after.is_some();
        let owner = Owner {
            origin: Origin {
                end: 0,
                generation: 0,
            },
            label: "A -> B".into(),
            tally: None,
            alive: bounded(0).0,
            client: false,
        };
        Feed::new(
            "A -> B",
            lane,
            &options.framing,
            options.hex,
            announce,
            owner,
        )
    }
    use crate::bridge::feed::Feed;
    use crate::bridge::handoff::{Partials, Phase};
    use crate::bridge::options::Options;
    use std::sync::OnceLock;
    use std::thread;
    use std::time::Duration;

    /// Holds every log call made on a thread named "logging source" until released,
    /// as a paused terminal or a full pipe would.
    struct Stuck;

    /// A channel: the source says it entered a log call; the test lets it out.
    type Gate = (Sender<()>, Receiver<()>);

    fn gates() -> &'static (Gate, Gate) {
        static GATES: OnceLock<(Gate, Gate)> = OnceLock::new();
        GATES.get_or_init(|| (bounded(1), bounded(1)))
    }

    impl log::Log for Stuck {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, _: &log::Record) {
            if thread::current().name() == Some("logging source") {
                let ((entered, _), (_, release)) = gates();
                let _ = entered.try_send(());
                let _ = release.recv();
            }
        }
        fn flush(&self) {}
    }

    #[test]
    fn a_source_logs_outside_its_framer_lock() {
        let _ = log::set_logger(&Stuck);
        log::set_max_level(log::LevelFilter::Debug);
        let lane = Arc::new(Lane::default());
        let (feed, inbox) = feed_of(&lane, &Options::default());
        let mut inlet = inbox.inlet("A", false);
        let source = thread::Builder::new()
            .name("logging source".into())
            .spawn(move || {
                endpoint::Inlet::feed(&mut inlet, b"whole\npart");
                inlet
            })
            .unwrap();
        let ((_, entered), (release, _)) = gates();
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the source logs its line");
        // The dispatcher takes the partial line while the source is stuck logging.
        let taken = feed.gather(
            Partials::All,
            Some(Instant::now() + Duration::from_secs(10)),
        );
        assert_eq!(taken.batch.bytes(), b"whole\npart");
        release.send(()).unwrap();
        let inlet = source.join().unwrap();
        drop(inlet);
        assert_eq!(lane.outstanding(), 10);
    }

    #[test]
    fn what_a_source_cannot_hand_on_is_counted_as_lost() {
        let lane = Arc::new(Lane::default());
        let (feed, inbox) = feed_of(&lane, &Options::default());
        let mut inlet = inbox.inlet("A", false);
        drop(feed);
        assert!(!endpoint::Inlet::feed(&mut inlet, b"a\nb\n"));
        assert_eq!((lane.outstanding(), lane.lost_pieces()), (0, 2));
    }

    #[test]
    fn partial_lines_follow_what_their_source_sent_before() {
        let lane = Arc::new(Lane::default());
        let options = Options {
            flush_after: Some(Duration::from_millis(1)),
            ..Options::default()
        };
        let (feed, inbox) = feed_of(&lane, &options);
        let (mut one, mut two) = (inbox.inlet("one", false), inbox.inlet("two", false));
        endpoint::Inlet::feed(&mut one, b"1a\n1b");
        endpoint::Inlet::feed(&mut two, b"2a\n2");
        thread::sleep(Duration::from_millis(2));
        let taken = feed.gather(Partials::Silent(Duration::from_millis(1)), None);
        let pieces: Vec<&[u8]> = taken.batch.iter().collect();
        let at = |piece: &[u8]| pieces.iter().position(|p| *p == piece).unwrap();
        assert!(at(b"1a\n") < at(b"1b"), "{pieces:?}");
        assert!(at(b"2a\n") < at(b"2"), "{pieces:?}");
        assert_eq!(taken.next, None);
        // The sources go on, and new lines queue behind the taken ones.
        endpoint::Inlet::feed(&mut one, b"1c\n");
        drop((one, two));
        let rest = feed.gather(
            Partials::All,
            Some(Instant::now() + Duration::from_secs(10)),
        );
        assert_eq!(rest.batch.bytes(), b"1c\n");
    }

    /// A destination that takes nothing until the test opens it; says when a source
    /// starts waiting for it.
    struct Door {
        waiting: Sender<()>,
        open: Receiver<()>,
        opened: bool,
    }

    impl endpoint::Direct for Door {
        fn try_send(&mut self, batch: &Batch) -> endpoint::Taken {
            endpoint::Taken {
                bytes: if self.opened { batch.bytes().len() } else { 0 },
                dropped: endpoint::Dropped::default(),
            }
        }
        fn wait_ready(&mut self, _: Duration) -> io::Result<bool> {
            let _ = self.waiting.send(());
            self.opened = self.open.recv_timeout(Duration::from_secs(10)).is_ok();
            Ok(self.opened)
        }
    }

    /// A source fed `whole\npart` that is still routing `whole\n` into a closed door,
    /// the inbox it came from, and an inlet that was fed `before` (and routed it) first.
    fn routing_source(
        before: &[u8],
    ) -> (
        Feed,
        impl Sized,
        Arc<Source>,
        Sender<()>,
        thread::JoinHandle<impl Sized>,
    ) {
        let lane = Arc::new(Lane::default());
        let (waiting, started) = bounded(4);
        let (open, opens) = bounded(1);
        lane.set_direct(Some(Box::new(Door {
            waiting,
            open: opens,
            opened: false,
        })));
        let options = Options {
            flush_after: Some(Duration::from_millis(1)),
            ..Options::default()
        };
        let (feed, inbox) = feed_of(&lane, &options);
        let mut first = inbox.inlet("first", false);
        endpoint::Inlet::feed(&mut first, before);
        let mut inlet = inbox.inlet("A", false);
        let source = Arc::clone(inlet.source());
        let thread = thread::spawn(move || {
            endpoint::Inlet::feed(&mut inlet, b"whole\npart");
            inlet
        });
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the source waits for the door");
        (feed, first, source, open, thread)
    }

    #[test]
    fn a_partial_line_never_lands_inside_a_line_written_straight_through() {
        // Another client's prompt, announced before; it is due while `whole\n` is
        // being written straight through.
        let (feed, first, _, open, thread) = routing_source(b"xyz");
        let taken = feed.gather(Partials::Silent(Duration::ZERO), None);
        assert!(taken.batch.is_empty(), "{:?}", taken.batch);
        let retry = taken.next.expect("a time to look again");
        assert!(retry >= Instant::now(), "not polled at once");
        open.send(()).unwrap();
        let inlet = thread.join().unwrap();
        let taken = feed.gather(Partials::Silent(Duration::ZERO), None);
        let mut pieces: Vec<&[u8]> = taken.batch.iter().collect();
        pieces.sort();
        assert_eq!(pieces, [&b"part"[..], &b"xyz"[..]]);
        drop((inlet, first));
    }

    #[test]
    fn a_partial_line_left_when_time_runs_out_is_counted_as_unsent() {
        let (feed, _first, _, open, thread) = routing_source(b"");
        let taken = feed.gather(Partials::All, Some(Instant::now()));
        assert!(taken.batch.is_empty(), "{:?}", taken.batch);
        assert_eq!(feed.unsent(), 4);
        open.send(()).unwrap();
        drop(thread.join().unwrap());
    }

    #[test]
    fn silence_counts_from_the_end_of_routing() {
        let (_feed, _first, source, open, thread) = routing_source(b"");
        let read = source.lock().machine.last_read();
        open.send(()).unwrap();
        drop(thread.join().unwrap());
        assert!(source.lock().machine.last_read() > read);
    }

    #[test]
    fn a_stop_waits_for_a_routing_source_to_say_it_is_done() {
        let (feed, _first, source, open, thread) = routing_source(b"");
        let opener = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(
                source.lock().machine.phase(),
                Phase::Routing { wanted: true, .. }
            ) && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(1));
            }
            open.send(()).unwrap();
        });
        let taken = feed.gather(
            Partials::All,
            Some(Instant::now() + Duration::from_secs(10)),
        );
        assert_eq!(taken.batch.bytes(), b"part");
        opener.join().unwrap();
        drop(thread.join().unwrap());
    }
}

#[cfg(test)]
mod message_tests {
    use super::tests::feed_of;
    use super::*;
    use crate::bridge::handoff::Partials;
    use crate::bridge::options::Options;
    use crate::endpoint;
    use std::time::Duration;

    /// What `inputs` become through one inlet: `Ok` is bytes fed, `Err(())` a message end.
    fn through(framing: Framing, inputs: &[Result<&[u8], ()>]) -> Vec<Vec<u8>> {
        let lane = Arc::new(Lane::default());
        let options = Options {
            framing,
            ..Options::default()
        };
        let (feed, inbox) = feed_of(&lane, &options);
        let mut inlet = inbox.inlet("A", false);
        for input in inputs {
            match input {
                Ok(data) => endpoint::Inlet::feed(&mut inlet, data),
                Err(()) => endpoint::Inlet::end_line(&mut inlet),
            };
        }
        drop((inlet, inbox));
        let taken = feed.gather(
            Partials::All,
            Some(Instant::now() + Duration::from_secs(10)),
        );
        taken.batch.iter().map(<[u8]>::to_vec).collect()
    }

    fn lines(max_line: usize) -> Framing {
        Framing::Lines {
            delimiter: b"\r\n".to_vec(),
            max_line,
        }
    }

    #[test]
    fn each_message_is_one_line() {
        let got = through(
            lines(100),
            &[Ok(b"ab"), Err(()), Ok(b""), Err(()), Ok(b"cd\r\n"), Err(())],
        );
        assert_eq!(
            got,
            [b"ab\r\n".to_vec(), b"\r\n".to_vec(), b"cd\r\n".to_vec()]
        );
    }

    #[test]
    fn a_message_in_fragments_ending_in_a_split_delimiter_gains_nothing() {
        let got = through(lines(100), &[Ok(b"ab\r"), Ok(b"\n"), Err(())]);
        assert_eq!(got, [b"ab\r\n".to_vec()]);
    }

    #[test]
    fn a_long_message_goes_in_pieces_and_gets_its_delimiter() {
        let got = through(lines(4), &[Ok(b"abcdefgh"), Err(())]);
        assert_eq!(got.concat(), b"abcdefgh\r\n");
        assert!(got.iter().all(|piece| piece.len() <= 6), "{got:?}");
    }

    #[test]
    fn raw_messages_are_as_they_are() {
        let got = through(Framing::Raw, &[Ok(b"ab"), Err(()), Ok(b"c\n"), Err(())]);
        assert_eq!(got, [b"ab".to_vec(), b"c\n".to_vec()]);
    }
}
