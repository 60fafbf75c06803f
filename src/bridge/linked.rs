//! [`Linked`]: an endpoint's inbox with the link to the serial port across the bridge
//! (see [`crate::endpoint::control`]). Which port that is, the dispatcher decides: the
//! other endpoint of two, the device for a hub's peers, none for a hub's device.

use crate::endpoint::{ControlLink, Inbox, Inlet};

/// An inbox, and the port across from its endpoint.
pub struct Linked(pub Box<dyn Inbox>, pub ControlLink);

impl Inbox for Linked {
    fn open(&self, name: &str) -> Box<dyn Inlet> {
        self.0.open(name)
    }

    fn open_client(&self, name: &str) -> Box<dyn Inlet> {
        self.0.open_client(name)
    }

    fn control(&self) -> ControlLink {
        self.1.clone()
    }
}
