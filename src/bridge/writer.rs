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
use std::time::{Duration, Instant};

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
    /// Set when shutdown can wait no longer.
    pub abandon: Arc<AtomicBool>,
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
            // The queue ended: what the outbox still holds goes out, within patience.
            outbox.finish(&w.abandon);
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
        let mut stalled: Option<Instant> = None;
        while !data.is_empty() {
            match self.writer.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    stalled = None;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if self.abandon.load(Ordering::Acquire) {
                        return Err(e);
                    }
                    // A serial port's handles share its non-blocking flag (the fast
                    // path's), so a write can find no room right after a poll found
                    // some: that is no news. A port is "not accepting" once its write
                    // timed out, or once such answers go on for as long.
                    let since = *stalled.get_or_insert_with(Instant::now);
                    let stuck = e.kind() == io::ErrorKind::TimedOut || since.elapsed() >= STALL;
                    if stuck && !self.warned {
                        self.warned = true;
                        warn!(
                            "{}: not accepting data; holding lines for it back",
                            self.name
                        );
                    } else if stuck {
                        debug!("{}: still not accepting data", self.name);
                    }
                    if e.kind() == io::ErrorKind::WouldBlock {
                        // Not a write that waited: do not spin.
                        thread::sleep(STALL_RETRY);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Dropped::default())
    }
}

/// How long a port may answer "no room" before it counts as not accepting data: the
/// serial write timeout.
const STALL: Duration = Duration::from_secs(1);

/// How long to wait before trying again after "no room" from a write that did not wait.
const STALL_RETRY: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each write from a script: `None` takes everything, `Some(kind)` fails.
    struct Port(Vec<Option<io::ErrorKind>>);

    impl Write for Port {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self.0.pop() {
                Some(Some(kind)) => Err(kind.into()),
                _ => Ok(buf.len()),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn send(answers: Vec<Option<io::ErrorKind>>) -> StreamOut {
        let mut out = StreamOut::new(Box::new(Port(answers)), "port", &Arc::default());
        let mut batch = Batch::default();
        batch.push(b"line\n");
        out.send(&batch).unwrap();
        out
    }

    #[test]
    fn no_room_once_is_no_news_but_a_timeout_is() {
        let would_block = Some(io::ErrorKind::WouldBlock);
        assert!(!send(vec![None, would_block, would_block]).warned);
        assert!(send(vec![None, Some(io::ErrorKind::TimedOut)]).warned);
    }
}
