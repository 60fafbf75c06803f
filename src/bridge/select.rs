//! The dispatcher's wait: whichever is ready first, as `asyncio.wait(FIRST_COMPLETED)`.
//!
//! It selects over the stop channel, writer failures, reopened endpoints
//! (`--reconnect`), each endpoint's end (its sources all gone) and, for each direction,
//! *sending* its held batch to the destination's writer and *receiving* the next
//! delivery from its sources. A direction that holds a batch stops taking more until
//! the writer has room, which is how a slow port holds back only its own direction (a
//! hub's peer takes both arms: it never holds back the device). Because the set of
//! arms changes with that state it uses crossbeam's `Select`, the builder `select!`
//! expands to. Timers (`--flush-after`, `settle=`, `--stats`) set the deadline; a due
//! timer goes first, so a busy bridge still flushes, settles and reports.

use std::time::Instant;

use crossbeam_channel::{Receiver, Select};

use super::direction::Direction;
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
    /// A delivery from the sources of a direction (by its destination), or `None`:
    /// its channel is gone.
    Received(usize, Option<Delivery>),
    /// A direction's held batch went to its writer, or came back (`Err`): the writer
    /// ended.
    Sent(usize, Result<(), Batch>),
    /// A lost endpoint opened again (`--reconnect`).
    Reopened(usize, Endpoint),
    /// Every source of an endpoint is gone, and what they sent is in their channels:
    /// it closed.
    Ended(usize),
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
    pub reopened: Option<&'a Receiver<(usize, Endpoint)>>,
    /// Per endpoint, while its sources are watched: disconnects when they are all gone.
    pub alive: &'a [Option<Receiver<()>>],
}

/// What each operation of the select is for.
enum Slot {
    Stop,
    Fail,
    Reopen,
    Send(usize),
    Receive(usize),
    Alive(usize),
}

/// Waits for the first ready operation, or until `timer` (with the directions' own
/// timers). `held` holds each direction's held batch meanwhile; one sent leaves it.
pub fn wait(
    inputs: &Inputs<'_>,
    dirs: &[Direction],
    held: &mut [Option<Batch>],
    timer: Option<Instant>,
) -> Event {
    let mut sel = Select::new();
    let mut slots = vec![Slot::Stop, Slot::Fail];
    sel.recv(inputs.stop);
    sel.recv(inputs.failures);
    if let Some(rx) = inputs.reopened {
        sel.recv(rx);
        slots.push(Slot::Reopen);
    }
    for (d, dir) in dirs.iter().enumerate() {
        let arms = dir.arms(&held[d]);
        if let Some(out) = arms.send {
            sel.send(out);
            slots.push(Slot::Send(d));
        }
        if let Some(rx) = arms.receive {
            sel.recv(rx);
            slots.push(Slot::Receive(d));
        }
    }
    for (end, alive) in inputs.alive.iter().enumerate() {
        if let Some(rx) = alive {
            sel.recv(rx);
            slots.push(Slot::Alive(end));
        }
    }
    let deadline = dirs
        .iter()
        .zip(held.iter())
        .filter_map(|(dir, held)| dir.timer(held))
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
    match slots[oper.index()] {
        Slot::Stop => {
            // A message or a dropped sender: either way, stop.
            let _ = oper.recv(inputs.stop);
            Event::Stop
        }
        Slot::Fail => {
            let failure = oper.recv(inputs.failures);
            Event::Failed(failure.expect("the dispatcher keeps a failure sender"))
        }
        Slot::Reopen => {
            let rx = inputs.reopened.expect("a reopen arm has its channel");
            let (end, endpoint) = oper.recv(rx).expect("the reconnect state keeps a sender");
            Event::Reopened(end, endpoint)
        }
        Slot::Send(d) => {
            let out = dirs[d]
                .arms(&held[d])
                .send
                .expect("a send arm has its queue");
            let batch = held[d].take().expect("a send arm has a held batch");
            Event::Sent(d, oper.send(out, batch).map_err(|e| e.into_inner()))
        }
        Slot::Receive(d) => {
            let rx = dirs[d]
                .arms(&held[d])
                .receive
                .expect("a receive arm has a feed");
            Event::Received(d, oper.recv(rx).ok())
        }
        Slot::Alive(end) => {
            let rx = inputs.alive[end]
                .as_ref()
                .expect("an alive arm has its channel");
            // Nothing is ever sent on it: this is the disconnect.
            let _ = oper.recv(rx);
            Event::Ended(end)
        }
    }
}
