//! [`Direction`]: one way through the bridge as the dispatcher keeps it. Its sources
//! (the [`Feed`]), a batch held for the destination's writer, its [`Lane`], and while
//! the destination is down or settling (`settle=MS`), the [`Backlog`] its lines wait
//! in. The dispatcher decides what happens; each transition of a direction's state is
//! a method here.
//!
//! A direction to one peer of a hub (a device with several peers) holds back its
//! source, the device, only briefly: its lane never waits, and a peer that falls
//! behind is given [`super::lag`]'s patience, then loses its oldest lines, counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use log::{debug, warn};

use super::backlog::Backlog;
use super::feed::{Feed, Gathered};
use super::handoff::Partials;
use super::lag::Lag;
use super::lane::{Lane, Traffic};
use super::options::Options;
use super::source::{Delivery, Failed, Owner, Sources};
use super::trace;
use crate::endpoint::Direct;
use crate::framing::Batch;

/// One direction, named by the side it reads from.
pub struct Direction {
    /// `A -> B`, for logs.
    label: String,
    /// The destination's name.
    to: String,
    options: Options,
    /// Its sources; `None` while the side it reads from is down.
    feed: Option<Feed>,
    /// A batch waiting for room in the writer's queue.
    held: Option<Batch>,
    /// When to look at partial lines for `--flush-after`.
    flush_at: Option<Instant>,
    lane: Arc<Lane>,
    /// The destination's writer queue; `None` while it is down, and once shutdown lets
    /// the writer finish.
    out: Option<Sender<Batch>>,
    /// While the destination is down or settling: the pieces waiting for it.
    backlog: Option<Backlog>,
    /// While the destination settles after opening: until when, and its direct route.
    settling: Option<(Instant, Option<Box<dyn Direct>>)>,
    /// Over-long lines cut by sources replaced since (a reconnect).
    cuts: u64,
    /// Lines cut short by sources replaced since.
    short: u64,
    /// To one peer of a hub: how far behind it is; see the module documentation.
    lag: Option<Lag>,
}

/// What a direction offers the dispatcher's select now: its held batch to the writer,
/// the next delivery from its sources, both (a hub's peer) or neither.
pub struct Arms<'a> {
    /// Its held batch, to the writer.
    pub send: Option<&'a Sender<Batch>>,
    /// The next delivery from its sources.
    pub receive: Option<&'a Receiver<Delivery>>,
}

impl Direction {
    /// The direction from `from` to `to`; with `hub`, to one peer of a hub.
    pub fn new(from: &str, to: &str, options: &Options, hub: bool) -> Direction {
        let lane = Arc::new(Lane::default());
        if hub {
            lane.never_wait();
        }
        Direction {
            label: format!("{from} -> {to}"),
            to: to.to_string(),
            options: options.clone(),
            feed: None,
            held: None,
            flush_at: None,
            lane,
            out: None,
            backlog: None,
            settling: None,
            cuts: 0,
            short: 0,
            lag: hub.then(|| Lag::new(options.queue)),
        }
    }

    /// Its lane.
    pub fn lane(&self) -> &Arc<Lane> {
        &self.lane
    }

    /// Sources for an endpoint that opened (`owner`): beside the others if the
    /// direction has sources, else in a new feed.
    pub fn sources(&mut self, owner: Owner) -> Sources {
        if let Some(feed) = &self.feed {
            return feed.sources(owner);
        }
        let o = &self.options;
        let announce = o.flush_after.is_some();
        let (feed, sources) =
            Feed::new(&self.label, &self.lane, &o.framing, o.hex, announce, owner);
        self.feed = Some(feed);
        self.flush_at = None;
        sources
    }

    /// The destination's new writer queue.
    pub fn connect(&mut self, out: Sender<Batch>) {
        self.out = Some(out);
    }

    /// Its held batch, out while the select borrows the direction.
    pub fn take_held(&mut self) -> Option<Batch> {
        self.held.take()
    }

    /// Puts back what [`Direction::take_held`] took, unless it went to the writer.
    pub fn put_held(&mut self, held: Option<Batch>) {
        if held.is_some() {
            self.held = held;
        }
    }

    /// What the select may do for it, `held` being its held batch.
    pub fn arms(&self, held: &Option<Batch>) -> Arms<'_> {
        let send = self.out.as_ref().filter(|_| held.is_some());
        let receive = self
            .feed
            .as_ref()
            .filter(|_| match &self.lag {
                Some(lag) => lag.taking(held),
                None => held.is_none(),
            })
            .map(Feed::rx);
        Arms { send, receive }
    }

    /// Its next timer: a flush (unless a batch is held) or the end of settling.
    pub fn timer(&self, held: &Option<Batch>) -> Option<Instant> {
        let flush = self.flush_at.filter(|_| held.is_none());
        let settle = self.settling.as_ref().map(|(until, _)| *until);
        let lag = self.lag.as_ref().and_then(Lag::timer);
        flush.into_iter().chain(settle).chain(lag).min()
    }

    /// A delivery from its sources: its pieces are held for the writer. A read error
    /// is returned, for the dispatcher to decide.
    pub fn receive(&mut self, delivery: Delivery) -> Result<(), Failed> {
        let feed = self
            .feed
            .as_ref()
            .expect("a direction receives while it has sources");
        let pieces = feed.accept(delivery)?;
        if pieces.partial && self.flush_at.is_none() {
            self.flush_at = self.options.flush_after.map(|d| Instant::now() + d);
        }
        self.hold(pieces.batch);
        Ok(())
    }

    /// The writer took the held batch, or ended (`Err`): then the batch is kept, and
    /// the queue nobody drains is no longer offered it.
    pub fn sent(&mut self, result: Result<(), Batch>) {
        match result {
            Err(batch) => {
                self.held = Some(batch);
                self.out = None;
            }
            Ok(()) => {
                if let Some(lag) = &mut self.lag {
                    lag.caught_up(&self.label);
                }
            }
        }
    }

    /// Holds a batch for the writer or, while the destination is down or settling,
    /// adds its pieces to the backlog, dropping the oldest beyond `--queue`. For a hub's
    /// peer, see [`Lag`].
    pub fn hold(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let limit = self.options.queue;
        match &mut self.backlog {
            Some(backlog) => {
                if backlog.push(batch, limit, &self.lane) {
                    warn!(
                        "{}: queue full while {} is down or settling; dropping the oldest \
                         lines (--queue {limit})",
                        self.label, self.to
                    );
                }
            }
            None => {
                let held = match &mut self.held {
                    Some(held) => {
                        held.append(batch);
                        held
                    }
                    None => self.held.insert(batch),
                };
                if let Some(lag) = &mut self.lag {
                    lag.held(held, &self.lane, Instant::now());
                }
            }
        }
    }

    /// A hub's peer that has been behind too long starts losing its oldest lines.
    pub fn check_lag(&mut self, now: Instant) {
        if let Some(lag) = &mut self.lag {
            lag.tick(&mut self.held, &self.lane, now, &self.label);
        }
    }

    /// `--flush-after`: forwards each partial line whose source has been silent long
    /// enough, and re-arms the timer for the others. Returns a read error met meanwhile.
    pub fn flush(&mut self, now: Instant) -> Option<Failed> {
        let after = self.options.flush_after?;
        match (self.flush_at, &self.feed) {
            (Some(at), Some(feed)) if at <= now && self.held.is_none() => {
                let gathered = feed.gather(Partials::Silent(after), None);
                self.flush_at = gathered.next;
                self.hold(gathered.batch);
                gathered.error
            }
            (_, None) => {
                self.flush_at = None;
                None
            }
            _ => None,
        }
    }

    /// Its sources are gone (their endpoint went down): what they read goes on, within
    /// `grace`; waits of theirs for a full destination end.
    pub fn sources_gone(&mut self, grace: Duration) {
        self.flush_at = None;
        if let Some(feed) = self.feed.take() {
            self.lane.interrupt();
            let gathered = feed.gather(Partials::All, Some(Instant::now() + grace));
            self.cuts += feed.cuts();
            self.short += feed.short();
            self.hold(gathered.batch);
        }
    }

    /// Its destination is gone: lines for it wait in a backlog from now on, held ones
    /// first, and lines held while it settled stay there.
    pub fn destination_gone(&mut self) {
        self.out = None;
        self.lane.set_direct(None);
        self.settling = None;
        self.backlog.get_or_insert_with(Backlog::default);
        if let Some(held) = self.held.take() {
            self.hold(held);
        }
    }

    /// The destination opened and settles for `time`: lines wait until then, and then
    /// its direct route (`direct`) is put in place.
    pub fn settle(&mut self, time: Duration, direct: Option<Box<dyn Direct>>) {
        debug!(
            "{}: holding lines for it {time:?} while it settles",
            self.to
        );
        self.backlog.get_or_insert_with(Backlog::default);
        self.settling = Some((Instant::now() + time, direct));
    }

    /// Ends settling if its time is up at `now` (or at once, with `all`, as at a stop).
    pub fn end_settling(&mut self, now: Instant, all: bool) {
        if self
            .settling
            .as_ref()
            .is_some_and(|(until, _)| all || *until <= now)
        {
            let (_, direct) = self.settling.take().expect("settling");
            self.release(direct);
        }
    }

    /// Lets lines flow to the destination again: its backlog goes out first, then the
    /// direct route (`direct`) may resume.
    pub fn release(&mut self, direct: Option<Box<dyn Direct>>) {
        if let Some(backlog) = self.backlog.take() {
            if backlog.dropped() > 0 {
                warn!(
                    "{}: {} dropped while {} was down",
                    self.label,
                    crate::words::count(backlog.dropped(), "line"),
                    self.to
                );
            }
            let batch = backlog.into_batch();
            if !batch.is_empty() {
                match &mut self.held {
                    Some(held) => held.append(batch),
                    None => self.held = Some(batch),
                }
            }
        }
        // The backlog counts as outstanding, so the direct route waits until it is out.
        self.lane.set_direct(direct);
    }

    /// At a stop: sources no longer wait for a full destination.
    pub fn stop(&self) {
        self.lane.stop();
    }

    /// At a stop: everything its sources read is taken (waiting for deliveries until
    /// `deadline`) and handed to the writer, waiting for room in its queue while
    /// `wait()` says so. The sources take nothing more.
    pub fn hand_over(&mut self, deadline: Instant, mut wait: impl FnMut() -> bool) {
        if let Some(feed) = &self.feed {
            let Gathered { batch, error, .. } = feed.gather(Partials::All, Some(deadline));
            if let Some(failed) = error {
                debug!(
                    "{}: read error while stopping: {}",
                    self.label, failed.error
                );
            }
            self.hold(batch);
        }
        if let (Some(mut batch), Some(out)) = (self.held.take(), &self.out) {
            // Room now, or wait for it a tick at a time while `wait` says so: once time is
            // up, each of many stuck destinations costs nothing more.
            while let Err(TrySendError::Full(back)) = out.try_send(batch) {
                if !wait() {
                    break;
                }
                match out.send_timeout(back, TICK) {
                    Err(SendTimeoutError::Timeout(back)) => batch = back,
                    _ => break,
                }
            }
        }
        // Dropping the queue lets the writer finish what it has and end.
        self.out = None;
    }

    /// `A -> B: 12 lines, 345 bytes` and whatever else there is to say; `reconnects`
    /// with `--reconnect`. With `--stats`, also how much went on the direct route.
    pub fn traffic(&self, reconnects: Option<u64>) -> String {
        let cuts = self.cuts + self.feed.as_ref().map_or(0, Feed::cuts);
        let short =
            self.short + self.feed.as_ref().map_or(0, Feed::short) + self.lane.turn().lapses();
        let written: Traffic = self.lane.traffic();
        let lost = self.lane.lost_pieces();
        let framing = &self.options.framing;
        let shown = trace::Shown {
            reconnects,
            cuts,
            short,
            dropped: self.lag.is_some(),
            read: false,
        };
        let mut line = trace::traffic(&self.label, &written, framing, lost, shown);
        if self.options.stats.is_some() && written.bytes > 0 {
            let share = 100.0 * self.lane.direct_bytes() as f64 / written.bytes as f64;
            line += &format!(" ({share:.1}% straight through, the rest by the dispatcher)");
        }
        line
    }

    /// The last word on it: its traffic, and what did not get through.
    pub fn summary(&self, reconnects: Option<u64>) -> String {
        let mut line = self.traffic(reconnects);
        let to = &self.to;
        match &self.backlog {
            Some(backlog) if backlog.waiting() > 0 => {
                let waiting = crate::words::count(backlog.waiting() as u64, "line");
                line += &format!(" ({waiting} still waiting for {to}, which is down)");
            }
            Some(_) => {}
            None => {
                let unsent = self.feed.as_ref().map_or(0, Feed::unsent);
                let unwritten = self.lane.outstanding() + unsent;
                if unwritten > 0 {
                    let unwritten = crate::words::count(unwritten, "byte");
                    line += &format!(
                        " ({unwritten} read but not written: {to} did not accept them in time)"
                    );
                }
            }
        }
        line
    }
}

/// How often a stop looks again whether the writer has room, or time is up.
const TICK: Duration = Duration::from_millis(20);
