//! Shutdown: on a stop, a failure or the end of input, the dispatcher forwards
//! everything already read (held batches, batches in flight, partial lines, lines held
//! while a port settles), lets the writers drain for at most [`SHUTDOWN_GRACE`], logs
//! one summary line per direction and returns.
//!
//! Then nothing the bridge started acts any more: reopening threads are cancelled and
//! joined, writers that could not finish are told to give up, and the endpoints'
//! guards are dropped (listeners stop taking clients, pty links are removed). Reader
//! threads blocked in `read` are not joined; they hold nothing that acts, and the
//! process exits around them.
//!
//! Bytes whose `read` returns after the stop count as arriving after it and are not
//! forwarded.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, TryRecvError};
use log::{debug, info};

use super::Side;
use super::dispatcher::Dispatcher;
use super::feed::Take;

/// How long shutdown may spend writing out what was already read. Keeps "stop within
/// a second" true even when a port has stopped accepting data.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// How long each endpoint may take to stop ([`crate::endpoint::Stop`]): a goodbye to a
/// broker, a close frame, a listener letting go of its port.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// How often shutdown checks its deadline and the stop channel while it waits.
const TICK: Duration = Duration::from_millis(20);

impl Dispatcher {
    /// Forwards everything already read, lets the writers drain, logs the summary.
    ///
    /// With `patient` (the input ended), everything is written however long the ports
    /// take, unless a stop signal comes meanwhile; then the usual grace applies.
    pub fn finish(&mut self, patient: bool) {
        if let Some(reconnect) = &mut self.reconnect {
            reconnect.cancel();
        }
        // Sources waiting for a full destination hand the rest over instead.
        for side in Side::BOTH {
            self.dirs[side].lane.stop();
        }
        let mut patience = Patience {
            patient,
            deadline: Instant::now() + SHUTDOWN_GRACE,
        };
        self.end_settling(true);
        for side in Side::BOTH {
            let dir = &mut self.dirs[side];
            if let Some(feed) = &dir.feed {
                let taken = feed.take(Take::All, Some(patience.deadline));
                if let Some(e) = taken.error {
                    debug!("{}: read error while stopping: {e}", self.ends[side].name);
                }
                self.hold(side, taken.batch);
            }
            let dir = &mut self.dirs[side];
            if let (Some(mut batch), Some(out)) = (dir.held.take(), &dir.out) {
                while let Err(SendTimeoutError::Timeout(back)) = out.send_timeout(batch, TICK) {
                    batch = back;
                    if patience.over(&self.stop) {
                        break;
                    }
                }
            }
        }
        // Dropping the queues lets each writer finish what it has and end.
        for side in Side::BOTH {
            self.dirs[side].out = None;
        }
        self.done = None;
        while let Err(RecvTimeoutError::Timeout) = self.done_rx.recv_timeout(TICK) {
            if patience.over(&self.stop) {
                debug!("a writer did not finish in time");
                self.give_up.set();
                break;
            }
        }
        for side in Side::BOTH {
            info!("{}", self.summary(side));
        }
        // Listeners stop taking clients, connections say goodbye, pty links go.
        for side in Side::BOTH {
            if let Some(stop) = self.stops[side].take() {
                stop.stop(Instant::now() + STOP_GRACE);
            }
        }
    }

    /// The last word on a direction: its traffic, and what did not get through.
    fn summary(&self, side: Side) -> String {
        let dir = &self.dirs[side];
        let mut line = self.traffic_line(side);
        let to = &self.ends[side.other()].name;
        match &dir.backlog {
            Some(backlog) if backlog.waiting() > 0 => {
                let waiting = backlog.waiting();
                line += &format!(" ({waiting} lines were still waiting for {to}, which is down)");
            }
            Some(_) => {}
            None => {
                let unsent = dir.feed.as_ref().map_or(0, |feed| feed.unsent());
                let unwritten = dir.lane.outstanding() + unsent;
                if unwritten > 0 {
                    line += &format!(
                        " ({unwritten} bytes read but not written: {to} did not accept them in time)"
                    );
                }
            }
        }
        line
    }
}

/// How long shutdown may still wait.
struct Patience {
    /// No deadline until a stop signal arrives.
    patient: bool,
    deadline: Instant,
}

impl Patience {
    /// Whether to give up waiting now.
    fn over(&mut self, stop: &Receiver<()>) -> bool {
        if self.patient {
            if matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                return false;
            }
            self.patient = false;
            self.deadline = Instant::now() + SHUTDOWN_GRACE;
        }
        Instant::now() >= self.deadline
    }
}
