//! What the bridge moved, in words: the `--stats` lines every period, and the summary
//! at shutdown, which also says what did not get through. One line per direction, and
//! in a hub one per peer for what it handed to the device ([`crate::bridge::trace`]
//! formats them).

use std::time::Instant;

use log::info;

use super::{DEVICE, Dispatcher};
use crate::bridge::trace;

impl Dispatcher {
    /// `--stats`: the traffic lines, and the time of the next.
    pub(super) fn log_stats(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.stats_at, self.options.stats) else {
            return;
        };
        if now < at {
            return;
        }
        self.report(false).iter().for_each(|line| info!("{line}"));
        self.stats_at = Some(Instant::now() + every);
    }

    /// One line per direction: to each peer, then into the device; in a hub, also one
    /// per peer for what it handed to the device. With `last`, the summary's lines,
    /// which also say what did not get through.
    pub(super) fn report(&self, last: bool) -> Vec<String> {
        // With one peer, the reconnects of both; in a hub, each line its own peer's
        // (the device's on the line into it).
        let reconnects = |end: usize| {
            self.reconnect.as_ref().map(|r| match self.hub() {
                true => r.reconnects_of(end),
                false => r.reconnects(),
            })
        };
        let line = |end: usize| match last {
            true => self.into[end].summary(reconnects(end)),
            false => self.into[end].traffic(reconnects(end)),
        };
        let mut lines: Vec<String> = (1..self.into.len()).map(line).collect();
        for (end, tally) in self.tallies.iter().enumerate() {
            if let Some(tally) = tally {
                let label = format!("{} -> {}", self.names[end], self.names[DEVICE]);
                let shown = trace::Shown {
                    reconnects: reconnects(end),
                    dropped: true,
                    read: true,
                    ..trace::Shown::default()
                };
                let (taken, missed) = (tally.taken(), tally.missed());
                let framing = &self.options.framing;
                lines.push(trace::traffic(&label, &taken, framing, missed, shown));
            }
        }
        lines.push(line(DEVICE));
        lines
    }
}
