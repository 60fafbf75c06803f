//! The dispatcher's wait: whichever is ready first, as `asyncio.wait(FIRST_COMPLETED)`.
//!
//! It selects over the stop channel, writer failures, reopened endpoints
//! (`--reconnect`) and, for each direction, either *sending* its held batch to the
//! destination's writer or *receiving* the next delivery from its sources: a direction
//! that holds a batch stops taking more until the writer has room, which is how a slow
//! port holds back only its own direction. Because the set of arms changes with that
//! state it uses crossbeam's `Select`, the builder `select!` expands to. Timers
//! (`--flush-after`, `settle=`, `--stats`) set the deadline; a due timer goes first, so
//! a busy bridge still flushes, settles and reports.

use std::time::Instant;

use crossbeam_channel::{Receiver, Select};

use super::direction::{Arm, Direction};
use super::side::{Pair, Side};
use super::source::Delivery;
use super::writer::Failure;
use crate::endpoint::Endpoint;
use crate::framing::Batch;

/// What woke the dispatcher.
pub enum Event {
    /// A stop signal, or its sender dropped.
    Stop,
    /// A writer failed.
    Failed(Failure),
    /// A delivery from the sources of a direction, or `None`: they are all gone.
    Received(Side, Option<Delivery>),
    /// A direction's held batch went to its writer, or came back (`Err`): the writer
    /// ended.
    Sent(Side, Result<(), Batch>),
    /// A lost endpoint opened again (`--reconnect`).
    Reopened(Side, Endpoint),
    /// A timer is due.
    Timer,
}

/// The channels the dispatcher waits on besides its directions'.
pub struct Inputs<'a> {
    /// Stop signals.
    pub stop: &'a Receiver<()>,
    /// Writer failures.
    pub failures: &'a Receiver<Failure>,
    /// Endpoints opened again, with `--reconnect`.
    pub reopened: Option<&'a Receiver<(Side, Endpoint)>>,
}

/// Waits for the first ready operation, or until `timer` (with the directions' own
/// timers). `held` holds each direction's held batch meanwhile; one sent leaves it.
pub fn wait(
    inputs: &Inputs<'_>,
    dirs: &Pair<Direction>,
    held: &mut Pair<Option<Batch>>,
    timer: Option<Instant>,
) -> Event {
    let mut sel = Select::new();
    let stop = sel.recv(inputs.stop);
    let fail = sel.recv(inputs.failures);
    let reopen = inputs.reopened.map(|rx| sel.recv(rx));
    let arms = Pair::new(|side| match dirs[side].arm(&held[side]) {
        Arm::Send(out) => Some(sel.send(out)),
        Arm::Receive(rx) => Some(sel.recv(rx)),
        Arm::Idle => None,
    });
    let deadline = Side::BOTH
        .into_iter()
        .filter_map(|side| dirs[side].timer(&held[side]))
        .chain(timer)
        .min();
    if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
        return Event::Timer;
    }
    let oper = match deadline {
        Some(deadline) => match sel.select_deadline(deadline) {
            Ok(oper) => oper,
            Err(_) => return Event::Timer,
        },
        None => sel.select(),
    };
    let index = oper.index();
    if index == stop {
        // A message or a dropped sender: either way, stop.
        let _ = oper.recv(inputs.stop);
        return Event::Stop;
    }
    if index == fail {
        let failure = oper.recv(inputs.failures);
        return Event::Failed(failure.expect("the dispatcher keeps a failure sender"));
    }
    if let (Some(reopen), Some(rx)) = (reopen, inputs.reopened)
        && index == reopen
    {
        let (side, endpoint) = oper.recv(rx).expect("the reconnect state keeps a sender");
        return Event::Reopened(side, endpoint);
    }
    let side = Side::BOTH
        .into_iter()
        .find(|&side| arms[side] == Some(index))
        .expect("the selected operation is one of the arms");
    match dirs[side].arm(&held[side]) {
        Arm::Send(out) => {
            let batch = held[side].take().expect("a send arm has a held batch");
            Event::Sent(side, oper.send(out, batch).map_err(|e| e.into_inner()))
        }
        Arm::Receive(rx) => Event::Received(side, oper.recv(rx).ok()),
        Arm::Idle => unreachable!("an arm exists only for a held batch or a feed"),
    }
}
