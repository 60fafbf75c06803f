//! [`Tee`]: the device's way in when it has several peers (a hub). Each peer has a
//! direction of its own (its own framer, lane, queue and accounts), so the device's
//! sources feed every one of them: what one read brings is handed to each in turn.
//! A peer's direction never waits for its destination (see `direction.rs`), so a
//! stuck peer holds up neither the device nor the other peers.

use std::io;

use super::source::Sources;
use super::source::inlet::SourceInlet;
use crate::endpoint::{Inbox, Inlet};

/// The device's sources in every peer's direction.
pub struct Tee(pub Vec<Sources>);

impl Inbox for Tee {
    fn open(&self, name: &str) -> Box<dyn Inlet> {
        Box::new(TeeInlet(
            self.0
                .iter()
                .map(|sources| sources.inlet(name, false))
                .collect(),
        ))
    }

    fn open_client(&self, name: &str) -> Box<dyn Inlet> {
        Box::new(TeeInlet(
            self.0
                .iter()
                .map(|sources| sources.inlet(name, true))
                .collect(),
        ))
    }
}

/// One source of the device, in every peer's direction.
struct TeeInlet(Vec<SourceInlet>);

impl TeeInlet {
    /// Calls `f` on each; true if any of them still takes data.
    fn each(&mut self, mut f: impl FnMut(&mut SourceInlet) -> bool) -> bool {
        self.0.iter_mut().fold(false, |any, inlet| f(inlet) | any)
    }
}

impl Inlet for TeeInlet {
    fn feed(&mut self, data: &[u8]) -> bool {
        self.each(|inlet| inlet.feed(data))
    }

    fn end_line(&mut self) -> bool {
        self.each(|inlet| inlet.end_line())
    }

    fn message(&mut self, data: &[u8]) -> bool {
        self.each(|inlet| inlet.message(data))
    }

    fn feed_now(&mut self, data: &[u8]) -> bool {
        self.each(|inlet| inlet.feed_now(data))
    }

    fn missed(&mut self, count: u64) {
        self.0.iter_mut().for_each(|inlet| inlet.missed(count));
    }

    fn drop_partial(&mut self) {
        self.0.iter_mut().for_each(|inlet| inlet.drop_partial());
    }

    fn fail(self: Box<Self>, error: io::Error) {
        let (kind, text) = (error.kind(), error.to_string());
        let mut error = Some(error);
        for inlet in self.0 {
            let error = error
                .take()
                .unwrap_or_else(|| io::Error::new(kind, text.clone()));
            Box::new(inlet).fail(error);
        }
    }
}
