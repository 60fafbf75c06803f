//! The hand-off between a direction's sources and the dispatcher: one state machine
//! per source, kept under the source's mutex with its framer, and the count of
//! deliveries the dispatcher received from it beside it.
//!
//! A source frames what it reads and routes the pieces itself (the direct route when
//! nothing is queued, else one delivery on the direction's channel). The dispatcher
//! takes a source's partial line straight from its framer (at a stop, when the source
//! ends, after `--flush-after` of silence), so a reader blocked in `read` never holds
//! data hostage and never needs waking. Three rules keep that in order:
//!
//! - **Counting.** A source counts each delivery before sending it (under its mutex);
//!   the dispatcher counts each one it receives ([`Received`]). Taking a partial line,
//!   the dispatcher notes the source's count ([`Mark`]) and hands the line on only once
//!   it has received that many: what the source sent before goes first.
//! - **Routing.** From framing a read until what is left of it is counted, a source is
//!   [`Phase::Routing`]: it may be writing a line on the direct route, or waiting for
//!   room in the channel. The dispatcher never takes from it then; it marks it wanted,
//!   and the source sends one more delivery (maybe empty) when it is done, so the
//!   dispatcher, waiting on the channel, hears of it ([`Machine::end_route`]).
//! - **Lines stay whole.** A source holds the direction's route lock from writing on
//!   the direct route until the rest of a line cut there is in the channel. A silence
//!   flush takes partial lines while it holds that lock, and hands them on only after
//!   every delivery that was in the channel when it began: the rest of a line another
//!   source began (and maybe left since) goes first. A stop waits for every routing
//!   source instead.
//!
//! The machine is pure: its transitions take the time and the framer's count as
//! arguments, so `model.rs` runs every interleaving of two sources and a dispatcher
//! through them and checks that nothing is lost or reordered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(test)]
mod model;

/// Where a source is in the hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Reading. `announced`: the dispatcher was told that a partial line is pending.
    Open {
        /// See above.
        announced: bool,
    },
    /// Handing a read on: from framing it until what is left of it is counted.
    Routing {
        /// The dispatcher waits for this source: send a delivery when done.
        wanted: bool,
        /// As in `Open`.
        announced: bool,
        /// The source is ending: it becomes `Closed`, not `Open`, when done.
        closing: bool,
    },
    /// Hands on nothing more: the bridge is stopping, or the source ended.
    Closed,
}

/// One source's side of the hand-off: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine {
    phase: Phase,
    /// Deliveries counted so far.
    sent: u64,
    /// When the last read returned data, or routing last ended (the source could not
    /// read while it routed): where the silence `--flush-after` waits for starts.
    last_read: Instant,
    /// Tell the dispatcher when a partial line appears (`--flush-after` is set).
    announce: bool,
}

/// Why a source routes, from [`Machine::route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// A partial line is pending after this read.
    pub partial: bool,
    /// The dispatcher must hear of that partial line: a delivery goes even if the
    /// direct route took every piece.
    pub news: bool,
}

/// Which partial lines the dispatcher takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partials {
    /// Every source's, and the sources close: a stop, or the endpoint going away.
    All,
    /// Those of sources silent this long (`--flush-after`).
    Silent(Duration),
}

/// What [`Machine::take`] says about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// Nothing to take.
    Nothing,
    /// Its partial line is due at this time, not yet.
    Later(Instant),
    /// It is routing: marked wanted; it sends a delivery when done.
    Busy,
    /// Take its partial line now, and hand it on once this mark is received.
    Now(Mark),
}

/// A source's count of deliveries when its partial line was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mark(u64);

/// Deliveries the dispatcher has received from one source; only it counts them.
#[derive(Debug, Default)]
pub struct Received(AtomicU64);

impl Received {
    /// One more delivery received.
    pub fn count(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Whether everything the source counted up to `mark` has been received.
    pub fn reached(&self, mark: Mark) -> bool {
        self.0.load(Ordering::Acquire) >= mark.0
    }
}

impl Machine {
    /// A new source: `closed` if the bridge is stopping already; `announce` with
    /// `--flush-after`.
    pub fn new(closed: bool, announce: bool, now: Instant) -> Machine {
        Machine {
            phase: match closed {
                true => Phase::Closed,
                false => Phase::Open { announced: false },
            },
            sent: 0,
            last_read: now,
            announce,
        }
    }

    /// Where it is.
    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the silence `--flush-after` waits for started.
    #[cfg(test)]
    pub fn last_read(&self) -> Instant {
        self.last_read
    }

    /// A read returned data at `now`: whether the source may hand it on (it is open).
    pub fn read(&mut self, now: Instant) -> bool {
        let open = matches!(self.phase, Phase::Open { .. });
        if open {
            self.last_read = now;
        }
        open
    }

    /// Whether the source still hands lines on.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// The source ends: whether it was open, so that its partial line goes on (take it
    /// from the framer and [`Machine::route`] it). Ends nothing twice.
    pub fn close(&mut self) -> bool {
        let open = matches!(self.phase, Phase::Open { .. });
        if open {
            self.phase = Phase::Closed;
        }
        open
    }

    /// The source framed a read (`pieces`: whether it completed any) and holds a
    /// partial line or not: whether it routes. It does when there are pieces to hand
    /// on, or a new partial line to announce.
    pub fn route(&mut self, pieces: bool, partial: bool) -> Option<Route> {
        let (announced, closing) = match self.phase {
            Phase::Open { announced } => (announced, false),
            Phase::Closed => (false, true),
            Phase::Routing { .. } => return None,
        };
        let news = self.announce && partial && !announced && !closing;
        if !pieces && !news {
            return None;
        }
        self.phase = Phase::Routing {
            wanted: false,
            announced,
            closing,
        };
        Some(Route { partial, news })
    }

    /// A delivery is about to go on the channel: it counts now, before it is sent.
    pub fn count(&mut self, route: Route) {
        self.sent += 1;
        if let Phase::Routing { announced, .. } = &mut self.phase {
            *announced = route.partial && self.announce;
        }
    }

    /// Routing ended at `now`: whether the dispatcher wanted the source meanwhile, in
    /// which case one more delivery (maybe empty) is counted and must be sent.
    pub fn end_route(&mut self, now: Instant) -> bool {
        let Phase::Routing {
            wanted,
            announced,
            closing,
        } = self.phase
        else {
            return false;
        };
        self.phase = match closing {
            true => Phase::Closed,
            false => Phase::Open { announced },
        };
        self.last_read = now;
        self.sent += u64::from(wanted);
        wanted
    }

    /// The source failed: the delivery with its error counts now.
    pub fn fail(&mut self) {
        self.sent += 1;
    }

    /// The dispatcher asks for the partial line (`pending` bytes in the framer) at
    /// `now`: see [`Taking`]. With [`Partials::All`] a taken source is closed.
    pub fn take(&mut self, which: Partials, now: Instant, pending: usize) -> Taking {
        if let Partials::Silent(after) = which {
            if pending == 0 {
                self.forget_news();
                return Taking::Nothing;
            }
            let at = self.last_read + after;
            if at > now {
                return Taking::Later(at);
            }
        }
        match &mut self.phase {
            Phase::Routing { wanted, .. } => {
                *wanted = true;
                Taking::Busy
            }
            phase => {
                *phase = match (which, *phase) {
                    (Partials::All, _) | (_, Phase::Closed) => Phase::Closed,
                    _ => Phase::Open { announced: false },
                };
                Taking::Now(Mark(self.sent))
            }
        }
    }

    /// When its partial line (`pending` bytes) falls due after `after` of silence.
    pub fn due(&self, after: Duration, pending: usize) -> Option<Instant> {
        (pending > 0).then(|| self.last_read + after)
    }

    /// The partial line is gone: no news is pending.
    fn forget_news(&mut self) {
        match &mut self.phase {
            Phase::Open { announced } | Phase::Routing { announced, .. } => *announced = false,
            Phase::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_routes_when_it_has_pieces_or_news() {
        let now = Instant::now();
        let mut quiet = Machine::new(false, false, now);
        assert_eq!(quiet.route(false, true), None);
        let mut telling = Machine::new(false, true, now);
        let route = telling.route(false, true).expect("news to tell");
        assert!(route.news);
        telling.count(route);
        assert!(!telling.end_route(now));
        // Told once: the same partial line is no news again.
        assert_eq!(telling.route(false, true), None);
        assert_eq!(telling.phase(), Phase::Open { announced: true });
    }

    #[test]
    fn a_routing_source_is_wanted_not_taken() {
        let now = Instant::now();
        let mut m = Machine::new(false, false, now);
        let route = m.route(true, true).unwrap();
        assert_eq!(m.take(Partials::All, now, 3), Taking::Busy);
        m.count(route);
        assert!(m.end_route(now), "wanted: one more delivery");
        assert_eq!(m.take(Partials::All, now, 3), Taking::Now(Mark(2)));
        assert_eq!(m.phase(), Phase::Closed);
        assert!(!m.read(now), "closed: reads no more");
    }

    #[test]
    fn silence_decides_which_partial_lines_are_taken() {
        let start = Instant::now();
        let after = Duration::from_millis(10);
        let mut m = Machine::new(false, true, start);
        assert_eq!(m.take(Partials::Silent(after), start, 0), Taking::Nothing);
        assert_eq!(
            m.take(Partials::Silent(after), start, 2),
            Taking::Later(start + after)
        );
        let taken = m.take(Partials::Silent(after), start + after, 2);
        assert_eq!(taken, Taking::Now(Mark(0)));
        assert_eq!(m.phase(), Phase::Open { announced: false });
    }

    #[test]
    fn a_closing_source_routes_its_rest_then_stays_closed() {
        let now = Instant::now();
        let mut m = Machine::new(false, true, now);
        assert!(m.close());
        assert!(!m.close(), "once");
        let route = m.route(true, false).unwrap();
        assert!(!route.news);
        m.count(route);
        m.end_route(now);
        assert_eq!(m.phase(), Phase::Closed);
        m.fail();
        assert_eq!(m.take(Partials::All, now, 0), Taking::Now(Mark(2)));
    }
}
