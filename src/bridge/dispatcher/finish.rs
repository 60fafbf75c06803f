//! The dispatcher's shutdown: everything already read is forwarded, the writers
//! drain, the summary is logged and every endpoint is stopped, with
//! [`crate::bridge::shutdown`]'s patience.

use std::sync::Arc;
use std::time::Instant;

use log::info;

use super::{DEVICE, Dispatcher};
use crate::bridge::direction::Direction;
use crate::bridge::lane::Lane;
use crate::bridge::shutdown::{Patience, wait_for_writers};

impl Dispatcher {
    /// Forwards everything already read, lets the writers drain, logs the summary and
    /// stops every endpoint; see [`crate::bridge::shutdown`]. With `patient` (the
    /// input ended), everything is written however long the ports take, unless a stop
    /// signal comes meanwhile; then the usual grace applies.
    pub(super) fn finish(&mut self, patient: bool) {
        if let Some(reconnect) = &mut self.reconnect {
            reconnect.cancel();
        }
        // Sources waiting for a full destination hand the rest over instead.
        self.into.iter().for_each(Direction::stop);
        let mut patience = Patience::new(patient, &self.stop);
        if self.hub() {
            // A stuck peer must not keep a hub whose input ended running for ever.
            let lanes: Vec<Arc<Lane>> = self.into.iter().map(|d| Arc::clone(d.lane())).collect();
            patience = patience.while_moving(move || lanes.iter().map(|l| l.outstanding()).sum());
        }
        let now = Instant::now();
        for dir in &mut self.into {
            dir.end_settling(now, true);
        }
        let count = self.into.len();
        for into in (1..count).chain([DEVICE]) {
            let deadline = patience.deadline();
            self.into[into].hand_over(deadline, || !patience.over());
        }
        self.done = None;
        wait_for_writers(&self.done_rx, &mut patience, &self.give_up);
        self.report(true).iter().for_each(|line| info!("{line}"));
        // Listeners stop taking clients, connections say goodbye, pty links go: all
        // within one grace, however many peers a hub has.
        let deadline = patience.stops_by();
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            stop.stop(deadline);
        }
    }
}
