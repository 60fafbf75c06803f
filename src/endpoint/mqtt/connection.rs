//! What the threads of one broker connection share: the [`Link`], and the commands
//! its writer thread takes.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::session::Session;

/// What the writer thread is asked to do.
pub enum Command {
    /// Write these bytes (whole packets).
    Write(Vec<u8>),
    /// Write these QoS 1 PUBLISH packets, this many: counted in [`Link::published`]
    /// once written.
    Publish(Vec<u8>, usize),
    /// Say goodbye and end.
    Stop,
}

/// What the threads, the outbox and the guard of one connection share.
pub struct Link {
    pub name: String,
    /// Its number in the session (QoS 1).
    pub connection: u64,
    /// The connection is gone: nothing more is sent or registered for it.
    pub dead: AtomicBool,
    /// The bridge is stopping it: its end is not a failure.
    pub stopping: AtomicBool,
    pub session: Option<Arc<Session>>,
    /// Why the writer failed, for the reader to report.
    pub error: Mutex<Option<io::Error>>,
    /// QoS 1 PUBLISH packets handed to the writer, and those it wrote: the difference
    /// were never sent on this connection.
    pub handed: AtomicUsize,
    pub published: AtomicUsize,
}

impl Link {
    /// Marks the connection dead, waking anyone waiting for acknowledgements.
    pub fn kill(&self) {
        match &self.session {
            Some(session) => session.kill(&self.dead),
            None => self.dead.store(true, Ordering::Release),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The error for a send after the connection is gone.
    pub fn lost(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the connection to the broker was lost",
        )
    }
}
