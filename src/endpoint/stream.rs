//! The byte-stream adapter: any `Read` and `Write` halves (a serial port, a socket,
//! stdin and stdout, a pty) become an endpoint, with a reader thread and a write half
//! the bridge's writer uses. serialport's own trait builds on std's I/O traits; so does
//! this.
//!
//! The reader thread ([`pump`]) blocks in `read` and feeds what it gets to the
//! stream's one inlet, until EOF, a read error (the inlet fails with it) or a bridge
//! that takes nothing more. The write half ([`StreamOut`]) writes each batch whole: a
//! write that times out means the peer is not accepting data (flow control, nothing
//! reading a pty), which is logged once; it keeps trying, so the bridge slows to the
//! peer's pace instead of dropping anything, until the bridge gives up at a stop.

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::contract::{Direct, Dropped, GiveUp, Inbox, Inlet, Outbox, Running, Start};
use crate::framing::Batch;

/// Bytes asked of the OS per read: more than a serial port's driver buffer holds, so
/// one read takes everything that is waiting.
pub const READ_BUFFER: usize = 16 * 1024;

/// A byte stream's halves, each used by one thread.
pub struct Stream {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
    direct: Option<Box<dyn Direct>>,
    guard: Option<Box<dyn Send>>,
}

impl Stream {
    /// A stream with these halves. EOF (`Ok(0)`) from `reader` means it closed; a
    /// write to `writer` that times out (`TimedOut` or `WouldBlock`) means "not
    /// accepting data yet".
    pub fn new(reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>) -> Stream {
        Stream {
            reader,
            writer,
            direct: None,
            guard: None,
        }
    }

    /// A second write half that never waits, for the direct route.
    pub fn with_direct(mut self, direct: impl Direct + 'static) -> Stream {
        self.direct = Some(Box::new(direct));
        self
    }

    /// The read half replaced by what `wrap` makes of it (a pty's packet mode).
    pub fn map_reader(
        mut self,
        wrap: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
    ) -> Stream {
        self.reader = wrap(self.reader);
        self
    }

    /// Something kept until the endpoint stops (a pty's other side and its link).
    pub fn with_guard(mut self, guard: impl Send + 'static) -> Stream {
        self.guard = Some(Box::new(guard));
        self
    }
}

impl Start for Stream {
    fn start(
        self: Box<Self>,
        name: &str,
        inbox: Box<dyn Inbox>,
        give_up: GiveUp,
    ) -> io::Result<Running> {
        let Stream {
            mut reader,
            writer,
            direct,
            guard,
        } = *self;
        let mut inlet = inbox.open(name);
        // The reader's inlet is the stream's only source: once it ends, the bridge sees
        // the stream close.
        drop(inbox);
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                if let Err(e) = pump(&mut *reader, &mut *inlet) {
                    inlet.fail(e);
                }
            })?;
        Ok(Running {
            outbox: Box::new(StreamOut::new(writer, name, give_up)),
            direct,
            stop: Box::new(guard),
        })
    }
}

/// Reads `reader` into `inlet` until EOF or until the bridge takes no more (`Ok`), or a
/// read fails (`Err`). The one read loop: byte streams and the clients of a
/// `tcp-listen://` server use it.
pub fn pump(reader: &mut dyn Read, inlet: &mut dyn Inlet) -> io::Result<()> {
    let mut buf = vec![0; READ_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !inlet.feed(&buf[..n]) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A byte stream's write half as an outbox.
pub struct StreamOut {
    writer: Box<dyn Write + Send>,
    name: String,
    /// Whether "not accepting data" was logged.
    warned: bool,
    give_up: GiveUp,
}

impl StreamOut {
    /// The write half of the stream `name`; `give_up` ends any wait.
    pub fn new(writer: Box<dyn Write + Send>, name: &str, give_up: GiveUp) -> StreamOut {
        StreamOut {
            writer,
            name: name.to_string(),
            warned: false,
            give_up,
        }
    }
}

impl Outbox for StreamOut {
    /// Writes all of the batch, however long the peer takes (see the module doc).
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
                    if self.give_up.now() {
                        return Err(e);
                    }
                    // A serial port's handles share its non-blocking flag (the direct
                    // route's), so a write can find no room right after a poll found
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
        let mut out = StreamOut::new(Box::new(Port(answers)), "port", GiveUp::default());
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

    #[test]
    fn a_stuck_write_gives_up_when_told() {
        let give_up = GiveUp::default();
        give_up.set();
        let stuck = vec![Some(io::ErrorKind::TimedOut); 3];
        let mut out = StreamOut::new(Box::new(Port(stuck)), "port", give_up);
        let mut batch = Batch::default();
        batch.push(b"line\n");
        assert!(out.send(&batch).is_err());
    }
}
