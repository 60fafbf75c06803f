//! Shutdown's patience. On a stop, a failure or the end of input, the dispatcher
//! forwards everything already read (held batches, deliveries in flight, partial lines,
//! lines held while a port settles), lets the writers drain for at most
//! [`SHUTDOWN_GRACE`], logs one summary line per direction, and stops every endpoint
//! within [`STOP_GRACE`] each ([`crate::endpoint::Stop`]).
//!
//! Then nothing the bridge started acts any more: reopening threads are cancelled and
//! joined, writers that could not finish are told to give up, listeners stop taking
//! clients, connections say goodbye, pty links are removed. Reader threads blocked in
//! `read` are not joined; they hold nothing that acts, and the process exits around
//! them.
//!
//! Bytes whose `read` returns after the stop count as arriving after it and are not
//! forwarded.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use log::debug;

use crate::endpoint::GiveUp;

/// How long shutdown may spend writing out what was already read. Keeps "stop within
/// a second" true even when a port has stopped accepting data.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// How long each endpoint may take to stop: a goodbye to a broker, a close frame, a
/// listener letting go of its port.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// How often shutdown checks its deadline and the stop channel while it waits.
const TICK: Duration = Duration::from_millis(20);

/// How long shutdown may still wait.
pub struct Patience<'a> {
    /// No deadline until a stop signal arrives.
    patient: bool,
    deadline: Instant,
    stop: &'a Receiver<()>,
}

impl<'a> Patience<'a> {
    /// [`SHUTDOWN_GRACE`] from now; with `patient`, no limit until `stop` receives.
    pub fn new(patient: bool, stop: &'a Receiver<()>) -> Patience<'a> {
        Patience {
            patient,
            deadline: Instant::now() + SHUTDOWN_GRACE,
            stop,
        }
    }

    /// Until when waits for deliveries may last.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether to give up waiting now.
    pub fn over(&mut self) -> bool {
        if self.patient {
            if matches!(self.stop.try_recv(), Err(TryRecvError::Empty)) {
                return false;
            }
            self.patient = false;
            self.deadline = Instant::now() + SHUTDOWN_GRACE;
        }
        Instant::now() >= self.deadline
    }
}

/// Waits until every writer has ended (`done` disconnects), as patience allows; then
/// tells those left to give up.
pub fn wait_for_writers(done: &Receiver<()>, patience: &mut Patience<'_>, give_up: &GiveUp) {
    while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(TICK) {
        if patience.over() {
            debug!("a writer did not finish in time");
            give_up.set();
            break;
        }
    }
}
