//! An endpoint that goes away: without `--reconnect` that ends the bridge; with it,
//! the endpoint goes down (what it sent still goes on, lines for it wait in a
//! backlog) until [`crate::bridge::reconnect`] has opened it again and it is attached
//! anew.

use log::{info, warn};

use super::{DEVICE, Dispatcher};
use crate::bridge::shutdown::SHUTDOWN_GRACE;
use crate::endpoint::Endpoint;
use crate::error::Error;

impl Dispatcher {
    /// The endpoint `end` is gone. Without `--reconnect` that ends the bridge with
    /// `error`; with it, the endpoint goes down and is opened again.
    pub(super) fn lose(&mut self, end: usize, error: Error) -> Result<(), Error> {
        let Some(reconnect) = &self.reconnect else {
            return Err(error);
        };
        if !reconnect.is_down(end) {
            warn!("{error}; reconnecting");
            self.go_down(end);
        }
        Ok(())
    }

    /// Marks `end` down and starts opening it again: what it sent before it went still
    /// goes on, and lines for it wait in a backlog.
    pub(super) fn go_down(&mut self, end: usize) {
        let Some(reconnect) = &mut self.reconnect else {
            return;
        };
        if !reconnect.lost(end) {
            return;
        }
        self.links[end].set(None);
        if end == DEVICE {
            for peer in 1..self.into.len() {
                self.into[peer].sources_gone(SHUTDOWN_GRACE);
            }
        } else if !self.hub() {
            self.into[DEVICE].sources_gone(SHUTDOWN_GRACE);
        }
        // A hub's peer shares the direction into the device with the others: what its
        // sources still read goes on, until it is stopped when it opens again.
        self.into[end].destination_gone();
    }

    /// The endpoint `end` is open again: new threads, and its backlog goes out first
    /// (after it settles, if it asks to).
    pub(super) fn restore(&mut self, end: usize, endpoint: Endpoint) -> Result<(), Error> {
        let Some(reconnect) = &mut self.reconnect else {
            return Ok(());
        };
        let since = reconnect.back(end);
        let name = &self.names[end];
        info!("{name}: back after {:.1} s", since.as_secs_f64());
        self.attach(end, endpoint)
    }
}
