//! Attaching an open endpoint: its sources feed the directions out of it (into every
//! peer through a [`Tee`], or into the device), its serial port's link is set for the
//! endpoint across from it, its threads start, and a writer takes the direction into
//! it. An endpoint opened again replaces its earlier threads this way too.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;

use super::{DEVICE, Dispatcher};
use crate::bridge::linked::Linked;
use crate::bridge::shutdown::STOP_GRACE;
use crate::bridge::source::{Origin, Owner, Sources, Tally};
use crate::bridge::tee::Tee;
use crate::bridge::writer::{Writing, spawn_writer};
use crate::endpoint::{ControlLink, Endpoint, Inbox};
use crate::error::Error;

impl Dispatcher {
    /// Starts moving data for the open `endpoint` number `end`: its sources feed the
    /// directions out of it (into every peer, or into the device), and a writer takes
    /// the direction into it.
    pub(super) fn attach(&mut self, end: usize, endpoint: Endpoint) -> Result<(), Error> {
        let name = self.names[end].clone();
        self.ends_input[end] = endpoint.ends_input();
        let settle = endpoint.settle();
        let origin = Origin {
            end,
            generation: self.generation(end),
        };
        let (alive, alive_rx) = bounded(0);
        let hub = self.hub();
        let owner = |label: String, tally: Option<Arc<Tally>>| Owner {
            origin,
            label,
            // A hub's peers share the direction into the device.
            client: hub && tally.is_some(),
            tally,
            alive: alive.clone(),
        };
        let inbox: Box<dyn Inbox> = if end == DEVICE {
            let mut tee: Vec<Sources> = (1..self.names.len())
                .map(|peer| {
                    let label = format!("{name} -> {}", self.names[peer]);
                    self.into[peer].sources(owner(label, None))
                })
                .collect();
            match tee.len() {
                1 => Box::new(tee.pop().expect("one peer")),
                _ => Box::new(Tee(tee)),
            }
        } else {
            let label = format!("{name} -> {}", self.names[DEVICE]);
            let tally = self.tallies[end].clone();
            Box::new(self.into[DEVICE].sources(owner(label, tally)))
        };
        drop(alive);
        self.alive[end] = Some(alive_rx);
        self.links[end].set(endpoint.control());
        let across = self.across(end);
        let link = across.map_or_else(ControlLink::default, |i| self.links[i].clone());
        let across = across.map(|i| self.names[i].clone());
        let inbox = Box::new(Linked(inbox, link, across));
        let setup = |what: &str| {
            let what = format!("cannot start {what} for {name}");
            move |source| Error::Setup { what, source }
        };
        let running = endpoint
            .start(inbox, self.give_up.clone())
            .map_err(setup("threads"))?;
        let writing = Writing {
            name: name.clone(),
            end,
            generation: origin.generation,
            lane: Arc::clone(self.into[end].lane()),
            fail: self.fail_tx.clone(),
            done: self.done.clone().expect("endpoints attach before shutdown"),
            give_up: self.give_up.clone(),
        };
        let out = spawn_writer(running.outbox, writing).map_err(setup("the writer thread"))?;
        self.into[end].connect(out);
        if let Some(old) = self.stops[end].replace(running.stop) {
            old.stop(Instant::now() + STOP_GRACE);
        }
        match settle {
            Some(time) => self.into[end].settle(time, running.direct),
            None => self.into[end].release(running.direct),
        }
        Ok(())
    }

    /// The endpoint across from `end` (its serial port link, its name): the other of
    /// two endpoints; in a hub, the device for a peer and none for the device.
    fn across(&self, end: usize) -> Option<usize> {
        match (self.hub(), end) {
            (false, DEVICE) => Some(1),
            (_, DEVICE) => None,
            _ => Some(DEVICE),
        }
    }
}
