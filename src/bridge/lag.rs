//! [`Lag`]: how a hub's peer that falls behind is treated, so that it holds back neither
//! the device nor the other peers for long.
//!
//! The lines for a peer wait in its direction while its writer is busy. Up to `--queue`
//! of them, nothing changes. Beyond that the peer is *behind*: the dispatcher stops
//! taking the device's lines for a while, which holds the device back (and so the other
//! peers): a burst is absorbed without loss, as it would be with one peer. If the peer
//! is still behind after [`PATIENCE`], it is *lagging*: the device's lines are taken
//! again, and the peer's oldest waiting lines are dropped to keep `--queue` of them,
//! counted as dropped for it. Once everything waiting has gone to its writer it has
//! caught up, and the next time it falls behind it gets the same patience again.

use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::lane::Lane;
use crate::framing::Batch;
use crate::words::count;

/// How long a peer that is behind may hold back the device (and so the other peers)
/// before its oldest lines are dropped instead. Short enough that a serial port's
/// kernel buffer (4 KiB, 0.35 s at 115200 baud) does not overflow meanwhile.
pub const PATIENCE: Duration = Duration::from_millis(100);

/// A hub peer's state of being behind.
#[derive(Debug)]
pub struct Lag {
    /// Lines that may wait for the peer (`--queue`).
    limit: usize,
    /// Since when it has been behind, while it is not yet lagging.
    since: Option<Instant>,
    /// Its oldest lines are being dropped.
    lagging: bool,
    /// Lines dropped since it started lagging.
    dropped: u64,
    /// Whether the first lag was logged as a warning (later ones go to the debug log).
    warned: bool,
}

impl Lag {
    /// A peer that may have `limit` lines waiting.
    pub fn new(limit: usize) -> Lag {
        Lag {
            limit: limit.max(1),
            since: None,
            lagging: false,
            dropped: 0,
            warned: false,
        }
    }

    /// Whether the device's lines may be taken now, `held` being what waits.
    pub fn taking(&self, held: &Option<Batch>) -> bool {
        self.lagging || held.as_ref().is_none_or(|held| held.pieces() < self.limit)
    }

    /// When it runs out of patience, if it is behind.
    pub fn timer(&self) -> Option<Instant> {
        self.since.map(|since| since + PATIENCE)
    }

    /// Lines were added to `held`: it may be behind now, or, lagging, its oldest go.
    pub fn held(&mut self, held: &mut Batch, lane: &Lane, now: Instant) {
        if held.pieces() < self.limit {
            return;
        }
        if self.lagging {
            self.trim(held, lane);
        } else if self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// At `now`: a peer behind for longer than [`PATIENCE`] starts lagging.
    pub fn tick(&mut self, held: &mut Option<Batch>, lane: &Lane, now: Instant, label: &str) {
        let Some(timer) = self.timer() else {
            return;
        };
        if now < timer {
            return;
        }
        self.since = None;
        let Some(held) = held else {
            return;
        };
        self.lagging = true;
        let text = format!(
            "{label}: the peer is not keeping up; dropping its oldest lines beyond {} \
             waiting (--queue; the summary counts them)",
            count(self.limit as u64, "line")
        );
        match self.warned {
            false => warn!("{text}"),
            true => debug!("{text}"),
        }
        self.warned = true;
        self.trim(held, lane);
    }

    /// What waited went to the writer: the peer has caught up.
    pub fn caught_up(&mut self, label: &str) {
        self.since = None;
        if self.lagging {
            self.lagging = false;
            let dropped = std::mem::take(&mut self.dropped);
            info!(
                "{label}: the peer caught up ({} dropped meanwhile)",
                count(dropped, "line")
            );
        }
    }

    /// Drops the oldest lines beyond the limit but the first (it may finish a line
    /// already begun), counted as lost.
    fn trim(&mut self, held: &mut Batch, lane: &Lane) {
        let over = held.pieces().saturating_sub(self.limit);
        let bytes = held.drop_after_first(over);
        if bytes > 0 {
            lane.lost(over, bytes);
            self.dropped += over as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(count: usize) -> Batch {
        let mut batch = Batch::default();
        (0..count).for_each(|i| batch.push(format!("{i}\n").as_bytes()));
        batch
    }

    #[test]
    fn behind_then_lagging_then_caught_up() {
        let lane = Lane::default();
        let mut lag = Lag::new(3);
        let start = Instant::now();
        let mut held = Some(lines(2));
        assert!(lag.taking(&held));
        held.as_mut().unwrap().append(lines(2));
        lag.held(held.as_mut().unwrap(), &lane, start);
        // Behind: the device is held back, nothing is dropped yet.
        assert!(!lag.taking(&held));
        assert_eq!(lag.timer(), Some(start + PATIENCE));
        lag.tick(&mut held, &lane, start + PATIENCE / 2, "D -> P");
        assert!(!lag.taking(&held));
        // Out of patience: lagging, the oldest go but the first.
        lag.tick(&mut held, &lane, start + PATIENCE, "D -> P");
        assert!(lag.taking(&held));
        let kept: Vec<&[u8]> = held.as_ref().unwrap().iter().collect();
        assert_eq!(kept, [&b"0\n"[..], b"0\n", b"1\n"]);
        assert_eq!(lane.lost_pieces(), 1);
        held.as_mut().unwrap().append(lines(5));
        lag.held(held.as_mut().unwrap(), &lane, start + PATIENCE);
        assert_eq!(held.as_ref().unwrap().pieces(), 3);
        assert_eq!(lane.lost_pieces(), 6);
        // It took what waited: patience again next time.
        lag.caught_up("D -> P");
        let mut held = Some(lines(3));
        lag.held(held.as_mut().unwrap(), &lane, start + PATIENCE * 3);
        assert!(!lag.taking(&held));
        assert_eq!(lag.timer(), Some(start + PATIENCE * 4));
    }
}
