//! [`Turn`]: whose line a destination is in the middle of, when sources share it.
//!
//! A line longer than `--max-line` goes on in pieces, one read's worth at a time, and
//! between two of its pieces another source (another client, another peer) could
//! write a line of its own into the middle of it. So a source that has handed on a
//! piece that does not end its line *holds the turn*: other sources wait before they
//! hand anything on, until the holder's line ends. Not for ever: a holder that hands on
//! nothing more for [`IDLE`], or that has held the turn for [`MOST`] in all, loses it;
//! the next source in line then ends the holder's line where it stands (the bridge
//! adds the delimiter, counted as cut short) before its own, and the holder's bytes
//! that follow begin a new line.
//!
//! A stop ends every wait at once ([`Turn::stop`]).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a line's holder may hand on nothing before it loses the turn.
pub const IDLE: Duration = Duration::from_secs(1);

/// How long one line may hold the turn in all, however fast it comes: a source that
/// never ends its line holds the others back no longer.
pub const MOST: Duration = Duration::from_secs(10);

/// Who holds the turn.
#[derive(Debug, Clone, Copy)]
struct Holder {
    source: u64,
    since: Instant,
    last: Instant,
}

impl Holder {
    /// When it loses the turn.
    fn lapses(&self) -> Instant {
        (self.last + IDLE).min(self.since + MOST)
    }
}

/// The turn of one destination's sources.
#[derive(Debug, Default)]
pub struct Turn {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    holder: Option<Holder>,
    stopped: bool,
    lapses: u64,
}

/// What [`Turn::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The turn is free, or this source's own (or the bridge is stopping): go on.
    Go,
    /// Another source held it and lost it: its line must be ended first, then go on.
    Lapsed,
    /// Another source holds it until at most then: wait.
    Wait(Instant),
}

impl Turn {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; the state is whole either way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `source` may hand on a batch now. Asked with the destination's route
    /// held, so that nobody takes the turn between the answer and the batch.
    pub fn check(&self, source: u64) -> Check {
        let mut state = self.lock();
        let Some(holder) = state.holder.filter(|h| h.source != source) else {
            return Check::Go;
        };
        if state.stopped {
            return Check::Go;
        }
        if Instant::now() >= holder.lapses() {
            state.holder = None;
            state.lapses += 1;
            self.changed.notify_all();
            log::info!(
                "a line over --max-line stayed unfinished too long while others waited; \
                 ended it there"
            );
            return Check::Lapsed;
        }
        Check::Wait(holder.lapses())
    }

    /// Waits until the turn changes hands, the bridge stops, or `until`.
    pub fn wait_until(&self, until: Instant) {
        let state = self.lock();
        let left = until.saturating_duration_since(Instant::now());
        if state.holder.is_some() && !state.stopped && !left.is_zero() {
            let _ = self.changed.wait_timeout(state, left);
        }
    }

    /// Lines ended because their holder lost the turn.
    pub fn lapses(&self) -> u64 {
        self.lock().lapses
    }

    /// `source` handed on a batch: if `open`, its line goes on and it holds the turn
    /// (renewed); if not, it lets go of the turn, if it held it.
    pub fn handed(&self, source: u64, open: bool) {
        let mut state = self.lock();
        let now = Instant::now();
        match (state.holder, open) {
            (Some(h), true) if h.source == source => {
                state.holder = Some(Holder { last: now, ..h });
            }
            (None, true) => {
                state.holder = Some(Holder {
                    source,
                    since: now,
                    last: now,
                });
            }
            (Some(h), false) if h.source == source => {
                state.holder = None;
                self.changed.notify_all();
            }
            // Someone else holds it (this source's turn lapsed meanwhile): it waits
            // next time.
            _ => {}
        }
    }

    /// Whether a source is in the middle of a line now.
    pub fn is_held(&self) -> bool {
        self.lock().holder.is_some()
    }

    /// The bridge is stopping: nobody waits any more.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_under_way_holds_the_others_until_it_ends() {
        let turn = Turn::default();
        turn.handed(1, true);
        assert!(turn.is_held());
        assert!(matches!(turn.check(2), Check::Wait(_)));
        // Its own turn: no wait.
        assert_eq!(turn.check(1), Check::Go);
        turn.handed(1, false);
        assert_eq!(turn.check(2), Check::Go);
        assert!(!turn.is_held());
    }

    #[test]
    fn a_silent_holder_loses_the_turn_and_its_line_is_the_next_ones_to_end() {
        let turn = Turn::default();
        turn.handed(7, true);
        let Check::Wait(until) = turn.check(8) else {
            panic!("the holder keeps it for a while")
        };
        assert!(until <= Instant::now() + IDLE);
        turn.wait_until(until);
        assert_eq!(turn.check(8), Check::Lapsed);
        assert!(!turn.is_held());
        assert_eq!(turn.lapses(), 1);
        // The old holder's next piece does not take it back from under a new line.
        turn.handed(8, true);
        turn.handed(7, true);
        assert_eq!(turn.check(8), Check::Go);
    }

    #[test]
    fn a_stop_ends_every_wait() {
        let turn = Turn::default();
        turn.handed(1, true);
        turn.stop();
        assert_eq!(turn.check(2), Check::Go);
        turn.wait_until(Instant::now() + MOST);
    }
}
