//! Writers: one thread per endpoint, taking batches from a bounded queue and putting
//! them out through the endpoint's [`Outbox`].
//!
//! A writer exists so that a port that drains slowly holds back only its own
//! direction: while writer B is busy the dispatcher stops taking A's batches (A's
//! sources then block, and A's kernel buffer fills: backpressure, not loss) but keeps
//! moving B's to A.
//!
//! A byte stream's write half becomes an outbox here ([`StreamOut`]): a write that
//! times out means the port is not accepting data (flow control, nothing reading a
//! pty), which is logged once; the writer keeps trying, so the bridge slows to the
//! port's pace instead of dropping anything, until shutdown gives up on it.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Sender, bounded};
use log::{debug, warn};

use super::Side;
use super::lane::Lane;
use crate::endpoint::{Dropped, Outbox};
use crate::error::Error;
use crate::framing::Batch;

/// Batches waiting for a writer. A batch holds a whole read, so a few keep a port busy.
const WRITER_QUEUE: usize = 4;

/// A writer's failure, tagged so the dispatcher can tell it from an older writer's.
pub struct Failure {
    /// The endpoint the writer wrote to.
    pub side: Side,
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
    pub side: Side,
    /// Which opening of it.
    pub generation: u64,
    /// The lane of the direction into it.
    pub lane: Arc<Lane>,
    /// Where failures go.
    pub fail: Sender<Failure>,
    /// Dropped when the thread ends; shutdown waits for that.
    pub done: Sender<()>,
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
                    Ok(dropped) => w.lane.written(batch.pieces(), bytes, dropped),
                    Err(source) => {
                        let endpoint = w.name;
                        let error = match source.kind() {
                            io::ErrorKind::BrokenPipe => Error::Closed { endpoint },
                            _ => Error::Write { endpoint, source },
                        };
                        let _ = w.fail.send(Failure {
                            side: w.side,
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
        })?;
    Ok(tx)
}

/// A byte stream's write half as an outbox.
pub struct StreamOut {
    writer: Box<dyn Write + Send>,
    name: String,
    /// Whether "not accepting data" was logged.
    warned: bool,
    /// Set at shutdown, once waiting longer is pointless: give up on a stuck port.
    abandon: Arc<AtomicBool>,
}

impl StreamOut {
    /// The write half of the endpoint `name`; `abandon` ends any wait.
    pub fn new(writer: Box<dyn Write + Send>, name: &str, abandon: &Arc<AtomicBool>) -> StreamOut {
        StreamOut {
            writer,
            name: name.to_string(),
            warned: false,
            abandon: Arc::clone(abandon),
        }
    }
}

impl Outbox for StreamOut {
    /// Writes all of the batch, however long the port takes (see the module doc).
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        let mut data = batch.bytes();
        while !data.is_empty() {
            match self.writer.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if self.abandon.load(Ordering::Acquire) {
                        return Err(e);
                    }
                    if !self.warned {
                        self.warned = true;
                        warn!(
                            "{}: not accepting data; holding lines for it back",
                            self.name
                        );
                    } else {
                        debug!("{}: still not accepting data", self.name);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Dropped::default())
    }
}
