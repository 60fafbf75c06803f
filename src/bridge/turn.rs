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
}

/// What [`Turn::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The turn is free, or this source's own.
    Free,
    /// Another source held it and lost it: its line must be ended first.
    Lapsed(u64),
}

impl Turn {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; the state is whole either way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `source` may hand on a batch: nobody else holds the turn, or the
    /// holder lost it (then it is `source`'s to end), or the bridge is stopping.
    pub fn wait(&self, source: u64) -> Waited {
        let mut state = self.lock();
        loop {
            let Some(holder) = state.holder.filter(|h| h.source != source) else {
                return Waited::Free;
            };
            if state.stopped {
                return Waited::Free;
            }
            let now = Instant::now();
            if now >= holder.lapses() {
                state.holder = None;
                self.changed.notify_all();
                return Waited::Lapsed(holder.source);
            }
            let wait = holder.lapses() - now;
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
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
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn a_line_under_way_holds_the_others_until_it_ends() {
        let turn = Arc::new(Turn::default());
        turn.handed(1, true);
        assert!(turn.is_held());
        let (done, waited) = crossbeam_channel::bounded(1);
        let other = Arc::clone(&turn);
        let waiter = thread::spawn(move || done.send(other.wait(2)).unwrap());
        // Held: the other source is still waiting a while later.
        assert!(waited.recv_timeout(Duration::from_millis(50)).is_err());
        // Its own turn: no wait.
        assert_eq!(turn.wait(1), Waited::Free);
        turn.handed(1, false);
        let got = waited.recv_timeout(Duration::from_secs(10));
        assert_eq!(got, Ok(Waited::Free));
        waiter.join().unwrap();
        assert!(!turn.is_held());
    }

    #[test]
    fn a_silent_holder_loses_the_turn_and_its_line_is_the_next_ones_to_end() {
        let turn = Turn::default();
        turn.handed(7, true);
        let started = Instant::now();
        assert_eq!(turn.wait(8), Waited::Lapsed(7));
        assert!(started.elapsed() >= IDLE - Duration::from_millis(5));
        assert!(!turn.is_held());
        // The old holder's next piece does not take it back from under a new line.
        turn.handed(8, true);
        turn.handed(7, true);
        assert_eq!(turn.wait(8), Waited::Free);
    }

    #[test]
    fn a_stop_ends_every_wait() {
        let turn = Arc::new(Turn::default());
        turn.handed(1, true);
        let other = Arc::clone(&turn);
        let waiter = thread::spawn(move || other.wait(2));
        thread::sleep(Duration::from_millis(20));
        turn.stop();
        assert_eq!(waiter.join().unwrap(), Waited::Free);
    }
}
