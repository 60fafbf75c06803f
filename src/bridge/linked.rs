//! [`Linked`]: an endpoint's inbox with the link to the serial port across the bridge
//! (see [`crate::endpoint::control`]). Which port that is, the dispatcher decides: the
//! other endpoint of two, the device for a hub's peers, none for a hub's device; the
//! same for the name across.

use crate::endpoint::{ControlLink, Inbox, Inlet};

/// An inbox, the port across from its endpoint, and the name of the endpoint across.
pub struct Linked(pub Box<dyn Inbox>, pub ControlLink, pub Option<String>);

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

    fn across(&self) -> Option<String> {
        self.2.clone()
    }
}
