//! One WebSocket connection after its handshake: a reader thread and a writer thread
//! on two handles of the same socket, each with tungstenite's frame codec.
//!
//! A tungstenite `WebSocket` cannot be shared by two threads, and one thread doing both
//! would have to poll: either it waits in `read` while a line for the peer waits, or it
//! wakes up on a timer to look. So the reader blocks in `read` on its handle, and the
//! writer blocks on its queue (and on the keepalive timer) on the other; the reader
//! hands pongs and close replies to the writer through a small control channel. An
//! idle connection wakes only for keepalive, and a line goes out the moment it comes.
//!
//! **One message = one line.** Out, each piece that ends with the delimiter is one
//! message without it: a text frame if it is valid UTF-8, a binary frame otherwise, so
//! bytes are never changed. A piece that does not end a line (an over-long line cut at
//! `--max-line`, a partial line sent by `--flush-after`) starts or continues a
//! fragmented binary message, which the piece that ends the line finishes: the far side
//! sees one message, one line, and no byte is added or lost. In, each message becomes
//! one line: its fragments are fed as they arrive and the delimiter is added at its end
//! unless it already ends with it. With `--raw`, every piece is one message and every
//! message is passed on as it is.
//!
//! **Strict about frames.** A frame RFC 6455 forbids (see [`super::rules`], and what
//! the codec itself refuses) fails the connection: the reader drops the unfinished
//! line of a message under way, the writer sends a close frame (1002, or 1009 for a
//! frame over [`MAX_FRAME`]), and both threads end with the reason. The reader waits a
//! moment for that frame, and for the answer to a peer's close, before the socket is
//! closed. Text that is not valid UTF-8 is not refused: bytes pass as they are.
//!
//! The rooms: what both threads share is here ([`Conn`], and the [`Pen`] they take
//! turns on); the reader is `frames/reader.rs`, the writer `frames/writer.rs`; how a
//! batch's pieces become frames, `frames/encoding.rs`; the console page's hello,
//! `frames/hello.rs`; a server's straight writes, `frames/voice.rs`.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::rules::Role;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Framing;

mod encoding;
mod hello;
mod reader;
mod voice;
mod writer;

/// The largest frame sent, and taken from a peer unless a line may be longer
/// (`--max-line`): a frame is read whole before the bridge frames it further, so this is
/// what each client may make the bridge hold at once. With 16 MiB, 16 clients sending
/// one frame each took the bridge to 773 MiB; with 1 MiB, tens of MiB. Every bridge cuts
/// what it sends at this size, so two bridges always take each other's frames.
const MAX_FRAME: usize = 1 << 20;

/// Control frames (pongs, a close reply) waiting for the writer.
const CONTROL_QUEUE: usize = 8;

/// What a connection's two threads share.
pub struct Conn {
    role: Role,
    /// Who is at the other end, for messages.
    peer: String,
    framing: Framing,
    keepalive: Duration,
    control: (Sender<Frame>, Receiver<Frame>),
    /// Pongs received so far; the writer checks it went up since its last ping.
    pongs: AtomicU64,
    /// Why the reader failed the connection (the peer broke the protocol), if it did.
    failure: Mutex<Option<&'static str>>,
    /// Says the writer has sent a close frame.
    closed: (Sender<()>, Receiver<()>),
    /// The socket, to close it from either thread.
    stream: Wire,
    /// The peer speaks [`CONSOLE`]: see [`Conn::speaking_console`].
    console: bool,
    /// The socket's writing side, held by whoever writes frames to it.
    pen: Mutex<Pen>,
}

/// The writing side of a connection, held by whoever writes to the socket: its writer
/// thread, or (a server's, see `impl Voice for Conn`) the thread handing batches over,
/// for a straight write. The writer holds it while it writes, even while the socket makes it
/// wait; a straight write only tries it, and leaves the batch to the writer if it is
/// taken. So frames never interleave, and the continuation state stays one.
#[derive(Debug, Default)]
struct Pen {
    /// A data message is under way: its first frame went, its last did not yet.
    open: bool,
    /// A straight write stopped short, perhaps mid-frame: its rest is the next parcel
    /// (queued just after), and nothing may go on the wire before it.
    cut: bool,
}

/// The subprotocol of the console page: it is greeted with a hello and the history,
/// and what it sends goes on exactly as sent.
pub const CONSOLE: &str = "serial-bridge.console";

impl Conn {
    /// A connection on `stream` after its handshake.
    pub fn new(
        role: Role,
        peer: String,
        framing: &Framing,
        keepalive: Duration,
        stream: &Wire,
    ) -> io::Result<Conn> {
        Ok(Conn {
            role,
            peer,
            framing: framing.clone(),
            keepalive,
            control: bounded(CONTROL_QUEUE),
            pongs: AtomicU64::new(0),
            failure: Mutex::new(None),
            closed: bounded(1),
            stream: stream.try_clone()?,
            console: false,
            pen: Mutex::default(),
        })
    }

    /// The connection speaks [`CONSOLE`], the console page's subprotocol. Its writer
    /// first sends a hello, one text message of JSON:
    /// `{"earlier":[T1,...,TK],"delimiter":"\n"}`: the next K messages are earlier
    /// lines (the history), sent at T1...TK (ms since the Unix epoch), and the bridge's
    /// delimiter (empty with `--raw`, or if it is not UTF-8). Then live lines, as to
    /// any client. Each message it sends goes on exactly as sent, at once, with no
    /// delimiter added: the page adds the line ending its user chose.
    pub fn speaking_console(mut self) -> Conn {
        self.console = true;
        self
    }

    /// Whether the peer speaks [`CONSOLE`].
    pub fn speaks_console(&self) -> bool {
        self.console
    }

    /// Asks the writer to close the connection with `code`; it ends after sending it.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        let frame = Frame::close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = self.control.0.try_send(frame);
    }

    /// Who is at the other end, for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Closes the socket at once: both threads end.
    pub fn hang_up(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn pen(&self) -> MutexGuard<'_, Pen> {
        self.pen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// tungstenite's error as an I/O error, keeping the I/O error where there is one.
pub fn io_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}
