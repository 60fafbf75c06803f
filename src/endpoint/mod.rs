//! Endpoints: what the user names on the command line, and the open byte streams.
//!
//! A [`Spec`] is configuration: parsed from a positional argument, shown in messages,
//! compared to catch the same port given twice. [`Spec::open`] turns it into an
//! [`Endpoint`]: a name and two plain `std::io` halves, so the bridge never needs to
//! know what kind of thing it is moving bytes between. Adding a kind of endpoint takes
//! one file beside `serial.rs`, one variant here and one arm in each match.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use crate::error::Error;

pub mod serial;

/// One side of the bridge, as the user described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A serial port: a device path (`/dev/ttyACM0`, `COM3`) with its line settings.
    Serial(serial::Settings),
}

impl Spec {
    /// Fills in settings the user left out from the command-line defaults.
    pub fn with_default_baud(mut self, baud: u32) -> Spec {
        match &mut self {
            Spec::Serial(settings) => settings.baud.get_or_insert(baud),
        };
        self
    }

    /// Opens the endpoint, ready to bridge.
    pub fn open(&self) -> Result<Endpoint, Error> {
        let name = self.to_string();
        match self {
            Spec::Serial(settings) => serial::open(name, settings),
        }
        .map_err(|source| Error::Open {
            endpoint: self.to_string(),
            source,
        })
    }
}

impl FromStr for Spec {
    type Err = String;

    /// Parses a positional argument. The error says what is wrong with it.
    fn from_str(text: &str) -> Result<Spec, String> {
        serial::Settings::from_str(text).map(Spec::Serial)
    }
}

impl fmt::Display for Spec {
    /// The name used in every message about this endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Serial(settings) => f.write_str(&settings.path),
        }
    }
}

/// An open endpoint: its name and its two halves, each used by one thread.
pub struct Endpoint {
    /// How messages name this endpoint.
    pub name: String,
    /// Where its bytes come from. EOF (`Ok(0)`) means it closed.
    pub reader: Box<dyn Read + Send>,
    /// Where bytes for it go.
    pub writer: Box<dyn Write + Send>,
    /// A second write half that never waits: a write takes what fits now and fails
    /// with `WouldBlock` (or `TimedOut`) if nothing does. With it, the bridge writes a
    /// line straight from the reader when nothing is queued for this endpoint, saving
    /// two thread wake-ups per line. `None` where the OS offers no such write.
    pub writer_now: Option<Box<dyn Write + Send>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .finish()
    }
}
