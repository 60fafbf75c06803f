//! Shutdown's patience. On a stop, a failure or the end of input, the dispatcher
//! forwards everything already read (held batches, deliveries in flight, partial lines,
//! lines held while a port settles), lets the writers drain for at most
//! [`SHUTDOWN_GRACE`], logs the summary, and stops every endpoint
//! ([`crate::endpoint::Stop`]) within [`STOP_GRACE`] all together, so that a stop
//! signal's whole stop takes at most [`STOP_WITHIN`].
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

/// How long the endpoints may take to stop, all together: a goodbye to a broker, a
/// close frame, a listener letting go of its port. A stop signal's whole stop still
/// ends within [`STOP_WITHIN`]; the endpoints get at least [`STOP_LEAST`] of it.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// A stop signal's promise: the bridge has stopped this long after it, however stuck
/// its ports are.
pub const STOP_WITHIN: Duration = Duration::from_secs(1);

/// The least time the endpoints get to stop, even when writing out took all of
/// [`SHUTDOWN_GRACE`].
const STOP_LEAST: Duration = Duration::from_millis(150);

/// How often shutdown checks its deadline and the stop channel while it waits.
const TICK: Duration = Duration::from_millis(20);

/// In a hub, how long the end of input waits for ports that take nothing of what is
/// left: one stuck peer must not keep the bridge running for ever.
pub const STALLED: Duration = Duration::from_secs(5);

/// What is left to write, all directions together, and when it last went down.
struct Progress<'a> {
    left: Box<dyn Fn() -> u64 + 'a>,
    last: u64,
    since: Instant,
}

/// How long shutdown may still wait.
pub struct Patience<'a> {
    /// No deadline until a stop signal arrives.
    patient: bool,
    deadline: Instant,
    stop: &'a Receiver<()>,
    /// Patient only while this goes down (a hub).
    progress: Option<Progress<'a>>,
}

impl<'a> Patience<'a> {
    /// [`SHUTDOWN_GRACE`] from now; with `patient`, no limit until `stop` receives.
    pub fn new(patient: bool, stop: &'a Receiver<()>) -> Patience<'a> {
        Patience {
            patient,
            deadline: Instant::now() + SHUTDOWN_GRACE,
            stop,
            progress: None,
        }
    }

    /// Patient only while what `left` says is left to write keeps going down, at least
    /// once every [`STALLED`].
    pub fn while_moving(mut self, left: impl Fn() -> u64 + 'a) -> Patience<'a> {
        let last = left();
        self.progress = Some(Progress {
            left: Box::new(left),
            last,
            since: Instant::now(),
        });
        self
    }

    /// Until when waits for deliveries may last.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Until when the endpoints may take to stop, asked now: [`STOP_GRACE`], but
    /// within [`STOP_WITHIN`] of the stop (unless the input ended and no signal came:
    /// then nobody is waiting).
    pub fn stops_by(&self) -> Instant {
        let now = Instant::now();
        if self.patient {
            return now + STOP_GRACE;
        }
        let within = self.deadline - SHUTDOWN_GRACE + STOP_WITHIN;
        (now + STOP_GRACE).min(within.max(now + STOP_LEAST))
    }

    /// Whether to give up waiting now.
    pub fn over(&mut self) -> bool {
        if self.patient {
            let signalled = !matches!(self.stop.try_recv(), Err(TryRecvError::Empty));
            let stalled = self.progress.as_mut().is_some_and(|p| {
                let left = (p.left)();
                if left != p.last {
                    (p.last, p.since) = (left, Instant::now());
                }
                p.since.elapsed() >= STALLED
            });
            if !signalled && !stalled {
                return false;
            }
            if stalled && !signalled {
                debug!("nothing more was written for {STALLED:?}; giving up on the rest");
            }
            self.patient = false;
            self.deadline = Instant::now() + SHUTDOWN_GRACE;
            if stalled {
                self.deadline = Instant::now();
            }
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
