//! Writers: one thread per endpoint, taking batches from a bounded queue and putting
//! them out through the endpoint's [`Outbox`].
//!
//! A writer exists so that a port that drains slowly holds back only its own
//! direction: while writer B is busy the dispatcher stops taking A's batches (A's
//! sources then block, and A's kernel buffer fills: backpressure, not loss) but keeps
//! moving B's to A.

use std::io;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Sender, bounded};

use super::lane::Lane;
use crate::endpoint::{GiveUp, Outbox};
use crate::error::Error;
use crate::framing::Batch;

/// Batches waiting for a writer. A batch holds a whole read, so a few keep a port busy.
const WRITER_QUEUE: usize = 4;

/// A writer's failure, tagged so the dispatcher can tell it from an older writer's.
pub struct Failure {
    /// The endpoint the writer wrote to.
    pub end: usize,
    /// Which opening of that endpoint.
    pub generation: u64,
    /// What happened.
    pub error: Error,
}

/// What a writer thread needs besides its outbox.
pub struct Writing {
    /// The endpoint's name, for messages.
    pub name: String,
    /// The endpoint written to.
    pub end: usize,
    /// Which opening of it.
    pub generation: u64,
    /// The lane of the direction into it.
    pub lane: Arc<Lane>,
    /// Where failures go.
    pub fail: Sender<Failure>,
    /// Dropped when the thread ends; shutdown waits for that.
    pub done: Sender<()>,
    /// Set when shutdown can wait no longer.
    pub give_up: GiveUp,
}

/// Starts a writer; returns its queue. Dropping the queue lets it finish and end.
pub fn spawn_writer(mut outbox: Box<dyn Outbox>, w: Writing) -> io::Result<Sender<Batch>> {
    let (tx, rx) = bounded::<Batch>(WRITER_QUEUE);
    thread::Builder::new()
        .name(format!("write {}", w.name))
        .spawn(move || {
            let _done = w.done;
            let mut batches = rx.iter();
            for batch in batches.by_ref() {
                let bytes = batch.bytes().len();
                match outbox.send(&batch) {
                    Ok(dropped) => {
                        w.lane.written(batch.pieces(), bytes, dropped);
                        w.lane.retract(outbox.retracted());
                    }
                    Err(source) => {
                        let endpoint = w.name;
                        let error = match source.kind() {
                            io::ErrorKind::BrokenPipe => Error::Closed { endpoint },
                            _ => Error::Write { endpoint, source },
                        };
                        let _ = w.fail.send(Failure {
                            end: w.end,
                            generation: w.generation,
                            error,
                        });
                        // This batch and the rest of the queue will never be written.
                        w.lane.lost(batch.pieces(), bytes);
                        batches.for_each(|rest| w.lane.lost(rest.pieces(), rest.bytes().len()));
                        return;
                    }
                }
            }
            // The queue ended: what the outbox still holds goes out, within patience.
            outbox.finish(&w.give_up);
            w.lane.retract(outbox.retracted());
        })?;
    Ok(tx)
}
