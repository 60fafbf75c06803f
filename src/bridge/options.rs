//! [`Options`]: how the bridge treats the data, from the command line.

use std::time::Duration;

use crate::endpoint::Defaults;
use crate::endpoint::contract::DEFAULT_BAUD;
use crate::framing::Framing;

/// How the bridge treats the data; cli's `Config` holds one.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines or raw.
    pub framing: Framing,
    /// Forward a partial line after this much silence from its source.
    pub flush_after: Option<Duration>,
    /// Log forwarded data as a hex dump rather than an escaped string.
    pub hex: bool,
    /// Clients a listening endpoint serves at once (`None`: the endpoint's default).
    pub max_clients: Option<usize>,
    /// Open a lost endpoint again instead of ending the bridge.
    pub reconnect: bool,
    /// Lines kept for an endpoint that is down; the oldest go first.
    pub queue: usize,
    /// Log a traffic line per direction this often.
    pub stats: Option<Duration>,
    /// The baud rate of a port that sets none (`--baud`).
    pub baud: u32,
    /// How long to hold lines for a port after it opens, where it sets none (`--settle`).
    pub settle: Option<Duration>,
    /// How long a serial port's reader lets lines gather while the port is busy
    /// (`--coalesce`; zero: never).
    pub coalesce: Duration,
}

/// Lines kept for a down endpoint by default: several seconds of a chatty device at
/// 9600 baud (about 30 short lines a second), and at most 1 MiB at the default
/// `--max-line`, so memory stays small however long a board is unplugged.
pub const DEFAULT_QUEUE: usize = 256;

impl Default for Options {
    fn default() -> Options {
        Options {
            framing: Framing::default(),
            flush_after: None,
            hex: false,
            max_clients: None,
            reconnect: false,
            queue: DEFAULT_QUEUE,
            stats: None,
            baud: DEFAULT_BAUD,
            settle: None,
            coalesce: Duration::ZERO,
        }
    }
}

impl Options {
    /// What opening an endpoint needs of these options.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            framing: self.framing.clone(),
            max_clients: self.max_clients,
            baud: self.baud,
            settle: self.settle,
            coalesce: self.coalesce,
        }
    }
}
