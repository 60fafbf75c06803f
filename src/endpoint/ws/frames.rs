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

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use log::{debug, info};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket};

use super::rules::{self, Role};
use crate::endpoint::contract::Inlet;
use crate::endpoint::listen::{Earlier, Parcel, Voice};
use crate::endpoint::tls::wire::Wire;
use crate::framing::{Batch, Framing};

/// The largest frame sent, and taken from a peer unless a line may be longer
/// (`--max-line`): a frame is read whole before the bridge frames it further, so this is
/// what each client may make the bridge hold at once. With 16 MiB, 16 clients sending
/// one frame each took the bridge to 773 MiB; with 1 MiB, tens of MiB. Every bridge cuts
/// what it sends at this size, so two bridges always take each other's frames.
const MAX_FRAME: usize = 1 << 20;

/// The bytes a frame's head takes, for the length of a short piece: two, and six more
/// for a masked one up to 64 KiB.
const FRAME_HEAD: usize = 8;

/// Control frames (pongs, a close reply) waiting for the writer.
const CONTROL_QUEUE: usize = 8;

/// How long a reader that fails the connection waits for the close frame to go out.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);

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

    /// The largest frame taken: [`MAX_FRAME`], or a whole line and its delimiter if
    /// `--max-line` allows more.
    fn largest(&self) -> usize {
        match &self.framing {
            Framing::Lines {
                max_line,
                delimiter,
            } => MAX_FRAME.max(max_line + delimiter.len()),
            Framing::Raw => MAX_FRAME,
        }
    }

    /// Who is at the other end, for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Closes the socket at once: both threads end.
    pub fn hang_up(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The reader: frames from `stream` into `inlet` until the peer closes (`Ok`) or
    /// the connection fails.
    pub fn read(&self, stream: Wire, inlet: &mut dyn Inlet) -> io::Result<()> {
        let mut socket = FrameSocket::new(stream);
        // A data message is under way: its first frame came, its last did not yet.
        let mut open = false;
        loop {
            let frame = match socket.read(Some(self.largest())) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // Gone without a closing frame: a message it left unfinished is
                    // not a message, and its writer need not wait for it any more.
                    if open {
                        inlet.drop_partial();
                    }
                    self.hang_up();
                    return Ok(());
                }
                Err(e) => {
                    if open {
                        inlet.drop_partial();
                    }
                    // What the codec itself refuses fails the connection too.
                    return Err(match e {
                        tungstenite::Error::Protocol(ProtocolError::InvalidOpcode(_)) => {
                            self.fail(CloseCode::Protocol, "unknown opcode")
                        }
                        tungstenite::Error::Protocol(_) => {
                            self.fail(CloseCode::Protocol, "a frame the protocol does not allow")
                        }
                        tungstenite::Error::Capacity(_) => {
                            self.fail(CloseCode::Size, "a frame over 16 MiB")
                        }
                        other => io_error(other),
                    });
                }
            };
            let header = frame.header();
            let (opcode, last, mask) = (header.opcode, header.is_final, header.mask);
            if let Some(why) = rules::broken(self.role, header, frame.payload().len(), open) {
                // A message it left unfinished is not a message.
                if open {
                    inlet.drop_partial();
                }
                return Err(self.fail(CloseCode::Protocol, why));
            }
            let mut payload = frame.into_payload().to_vec();
            if let Some(mask) = mask {
                payload
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, byte)| *byte ^= mask[i % 4]);
            }
            let more = match opcode {
                OpCode::Data(Data::Text | Data::Binary | Data::Continue) => {
                    open = !last;
                    let raw = matches!(self.framing, Framing::Raw);
                    // A console message goes on as it comes, frame by frame.
                    match (self.console, raw) {
                        (true, _) => inlet.feed_now(&payload),
                        (false, true) => inlet.feed(&payload),
                        (false, false) => inlet.feed(&payload) && (!last || inlet.end_line()),
                    }
                }
                OpCode::Control(Control::Ping) => {
                    let _ = self.control.0.try_send(Frame::pong(payload));
                    true
                }
                OpCode::Control(Control::Pong) => {
                    self.pongs.fetch_add(1, Ordering::Release);
                    true
                }
                OpCode::Control(Control::Close) => {
                    debug!("{}: closed the connection", self.peer);
                    // A message it left unfinished is not a message.
                    if open {
                        inlet.drop_partial();
                    }
                    if let Some((code, why)) = rules::bad_close(&payload) {
                        return Err(self.fail(code, why));
                    }
                    // The answer goes out before the socket is closed.
                    self.send_close(Frame::close(None));
                    return Ok(());
                }
                // Refused by `rules::broken` above.
                OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => false,
            };
            if !more {
                return Ok(());
            }
        }
    }

    /// Fails the connection because the peer broke the protocol: the writer sends a
    /// close frame with `code`, and both threads end with `why`.
    fn fail(&self, code: CloseCode, why: &'static str) -> io::Error {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        let frame = Frame::close(Some(CloseFrame {
            code,
            reason: why.into(),
        }));
        self.send_close(frame);
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// Has the writer send a close `frame` and waits a moment until it has, as the
    /// socket is closed next: behind pongs already queued, as long as the writer moves.
    fn send_close(&self, frame: Frame) {
        if self.control.0.send_timeout(frame, CLOSE_PATIENCE).is_ok() {
            let _ = self.closed.1.recv_timeout(CLOSE_PATIENCE);
        }
    }

    /// The writer: every batch of `queue` out as frames, the reader's control frames, and
    /// a ping every keepalive period; ends when the queue ends or a close is sent (`Ok`),
    /// or when a write fails or the peer does not answer a ping.
    pub fn write(&self, stream: Wire, earlier: Earlier, queue: Receiver<Parcel>) -> io::Result<()> {
        let mut socket = FrameSocket::new(stream);
        if self.console {
            self.greet(&mut socket, &earlier, &mut self.pen().open)?;
        }
        let mut pinged: Option<u64> = None;
        let mut next_ping = Instant::now() + self.keepalive;
        // Every way out of the loop, a failed write's `?` too, comes past what follows.
        let mut run = || -> io::Result<()> {
            loop {
                select! {
                    recv(queue) -> batch => match batch {
                        Ok(batch) => self.deliver(&mut self.pen(), socket.get_mut(), batch)?,
                        Err(_) => {
                            let pen = self.pen();
                            // The rest of a straight write that never came (its parcel
                            // was not queued): no frame can follow what went of it.
                            if pen.cut {
                                let _ = self.stream.shutdown(Shutdown::Write);
                                break Ok(());
                            }
                            // A line cut short at a stop still ends its message, so the far
                            // side gets what was sent of it.
                            if pen.open {
                                let end = Frame::message(Vec::new(), OpCode::Data(Data::Continue), true);
                                let _ = socket.write(self.masked(end));
                            }
                            let close = Frame::close(Some(CloseFrame {
                                code: CloseCode::Away,
                                reason: "the bridge is stopping".into(),
                            }));
                            let _ = socket.send(self.masked(close));
                            let _ = self.stream.shutdown(Shutdown::Write);
                            break Ok(());
                        }
                    },
                    recv(self.control.1) -> frame => {
                        let Ok(frame) = frame else { break Ok(()) };
                        let closing = frame.header().opcode == OpCode::Control(Control::Close);
                        let _pen = self.settled(socket.get_mut(), &queue)?;
                        socket.send(self.masked(frame)).map_err(io_error)?;
                        if closing {
                            // Nothing follows a close; the peer answers with its own and ends.
                            let _ = self.stream.shutdown(Shutdown::Write);
                            let _ = self.closed.0.try_send(());
                            let failure = *self.failure.lock().unwrap_or_else(|e| e.into_inner());
                            break match failure {
                                Some(why) => Err(io::Error::new(io::ErrorKind::InvalidData, why)),
                                None => Ok(()),
                            };
                        }
                    },
                    default(next_ping.saturating_duration_since(Instant::now())) => {
                        let pongs = self.pongs.load(Ordering::Acquire);
                        if pinged.is_some_and(|before| before == pongs) {
                            let secs = self.keepalive.as_secs();
                            info!("{}: no answer to a ping within {secs} s; dropping it", self.peer);
                            break Err(io::Error::new(io::ErrorKind::TimedOut, "no answer to a ping"));
                        }
                        pinged = Some(pongs);
                        let _pen = self.settled(socket.get_mut(), &queue)?;
                        socket.send(self.masked(Frame::ping(Vec::new()))).map_err(io_error)?;
                        next_ping = Instant::now() + self.keepalive;
                    },
                }
            }
        };
        let result = run();
        // A reader waiting for a close frame to go out waits no more, sent or not (a
        // peer that closed and reset at once makes the reply fail).
        let _ = self.closed.0.try_send(());
        // The reader may be waiting for a peer that will never answer now.
        if result.is_err() {
            self.hang_up();
        }
        result
    }

    fn pen(&self) -> MutexGuard<'_, Pen> {
        self.pen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `parcel` with the `pen` held: a batch as frames, or the rest of a straight
    /// write as it is.
    fn deliver(&self, pen: &mut Pen, stream: &mut Wire, parcel: Parcel) -> io::Result<()> {
        match parcel.framed() {
            true => {
                stream.write_all(parcel.bytes())?;
                pen.cut = false;
            }
            false => {
                // Only a straight write cuts, and only when nothing is queued; its rest
                // is queued at once, so the writer meets it before any other parcel.
                debug_assert!(!pen.cut, "the rest of a straight write comes first");
                stream.write_all(self.wire(&parcel, &mut pen.open).bytes())?;
            }
        }
        stream.flush()?;
        parcel.written();
        Ok(())
    }

    /// The pen, for a control frame: if a straight write stopped mid-way, its rest (the
    /// next parcel) is written first, so that the frame does not land inside another.
    fn settled(
        &self,
        stream: &mut Wire,
        queue: &Receiver<Parcel>,
    ) -> io::Result<MutexGuard<'_, Pen>> {
        let mut pen = self.pen();
        if pen.cut {
            // Queued just after the cut, by a thread that does not need the pen for it.
            let rest = queue.recv().map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the rest of a frame never came")
            })?;
            self.deliver(&mut pen, stream, rest)?;
        }
        Ok(pen)
    }

    /// `batch` as it goes on the wire: each piece's frames (see [`Conn::frames`]), as
    /// one piece of the result, so that what of it a socket does not take counts the
    /// pieces not all out.
    fn wire(&self, batch: &Batch, open: &mut bool) -> Batch {
        batch.map(FRAME_HEAD * batch.pieces(), |piece, wire| {
            for frame in self.frames(piece, open) {
                frame.format(wire).expect("a Vec takes every byte");
            }
        })
    }

    /// A console page's hello and its earlier lines: see [`Conn::speaking_console`].
    fn greet(
        &self,
        socket: &mut FrameSocket<Wire>,
        earlier: &Earlier,
        open: &mut bool,
    ) -> io::Result<()> {
        let times: Vec<String> = earlier.times.iter().map(u64::to_string).collect();
        let delimiter = match &self.framing {
            Framing::Lines { delimiter, .. } => std::str::from_utf8(delimiter).unwrap_or(""),
            Framing::Raw => "",
        };
        let hello = format!(
            "{{\"earlier\":[{}],\"delimiter\":{}}}",
            times.join(","),
            json_string(delimiter)
        );
        let hello = Frame::message(hello.into_bytes(), OpCode::Data(Data::Text), true);
        socket.write(self.masked(hello)).map_err(io_error)?;
        for piece in earlier.pieces.iter() {
            for frame in self.frames(piece, open) {
                socket.write(frame).map_err(io_error)?;
            }
        }
        socket.flush().map_err(io_error)
    }

    /// The frames for one piece: one, or a piece over [`MAX_FRAME`] cut into several,
    /// so that a peer with the same limit takes it.
    fn frames<'a>(
        &'a self,
        piece: &'a [u8],
        open: &'a mut bool,
    ) -> impl Iterator<Item = Frame> + 'a {
        let (data, last) = self.strip(piece);
        let chunks = data.len().div_ceil(MAX_FRAME).max(1);
        (0..chunks).map(move |i| {
            let chunk =
                &data[(i * MAX_FRAME).min(data.len())..((i + 1) * MAX_FRAME).min(data.len())];
            let end = last && i + 1 == chunks;
            self.frame_of(chunk, end, data, open)
        })
    }

    /// A line's data and whether the piece ends the line.
    fn strip<'a>(&self, piece: &'a [u8]) -> (&'a [u8], bool) {
        match &self.framing {
            Framing::Lines { delimiter, .. } => match piece.strip_suffix(delimiter.as_slice()) {
                Some(line) => (line, true),
                None => (piece, false),
            },
            Framing::Raw => (piece, true),
        }
    }

    /// One frame of `chunk`, part of `whole`; `last` if it ends the message.
    fn frame_of(&self, chunk: &[u8], last: bool, whole: &[u8], open: &mut bool) -> Frame {
        let opcode = match (
            *open,
            last && chunk.len() == whole.len() && std::str::from_utf8(whole).is_ok(),
        ) {
            (true, _) => Data::Continue,
            (false, true) => Data::Text,
            (false, false) => Data::Binary,
        };
        *open = !last;
        self.masked(Frame::message(chunk.to_vec(), OpCode::Data(opcode), last))
    }

    /// The frame for one piece no longer than [`MAX_FRAME`].
    #[cfg(test)]
    fn frame(&self, piece: &[u8], open: &mut bool) -> Frame {
        let (data, last) = self.strip(piece);
        self.frame_of(data, last, data, open)
    }

    /// A client masks every frame it sends (RFC 6455 5.3); a server never does.
    fn masked(&self, mut frame: Frame) -> Frame {
        if self.role == Role::Client {
            frame.header_mut().mask = Some(random_mask());
        }
        frame
    }
}

/// A server's straight writes: the same wire bytes its writer would write (the same
/// [`Conn::wire`], with the same continuation state), with the pen held, tried and
/// never waited for. A console page gets none (see `server.rs`).
impl Voice for Conn {
    fn speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch> {
        let mut pen = self.pen.try_lock().ok()?;
        if pen.cut {
            return None;
        }
        let open = pen.open;
        let mut wire = self.wire(batch, &mut pen.open);
        let sent = send(wire.bytes());
        if sent == 0 {
            // Nothing went: the writer frames the batch itself, from where it began.
            pen.open = open;
            return None;
        }
        wire.advance(sent);
        pen.cut = !wire.is_empty();
        Some(wire)
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Four unpredictable bytes, from the standard library's per-process random hash keys.
fn random_mask() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    let bits = hasher.finish();
    (bits as u32).to_le_bytes()
}

/// tungstenite's error as an I/O error, keeping the I/O error where there is one.
pub fn io_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(framing: Framing) -> Conn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream =
            Wire::plain(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        Conn::new(
            Role::Server,
            "peer".into(),
            &framing,
            Duration::from_secs(30),
            &stream,
        )
        .unwrap()
    }

    fn describe(frame: &Frame) -> (OpCode, bool, Vec<u8>) {
        let h = frame.header();
        (h.opcode, h.is_final, frame.payload().to_vec())
    }

    #[test]
    fn lines_lose_their_delimiter_and_cut_pieces_become_fragments() {
        let c = conn(Framing::default());
        let mut open = false;
        let text = OpCode::Data(Data::Text);
        let binary = OpCode::Data(Data::Binary);
        let more = OpCode::Data(Data::Continue);
        assert_eq!(
            describe(&c.frame(b"hi\r\n", &mut open)),
            (text, true, b"hi\r".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"\xff\n", &mut open)),
            (binary, true, b"\xff".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"abc", &mut open)),
            (binary, false, b"abc".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"def", &mut open)),
            (more, false, b"def".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"g\n", &mut open)),
            (more, true, b"g".to_vec())
        );
        assert!(!open);
        assert_eq!(
            describe(&c.frame(b"\n", &mut open)),
            (text, true, b"".to_vec())
        );
    }

    #[test]
    fn raw_pieces_are_whole_messages() {
        let c = conn(Framing::Raw);
        let mut open = false;
        let (opcode, last, data) = describe(&c.frame(b"a\nb", &mut open));
        assert_eq!(
            (opcode, last, data),
            (OpCode::Data(Data::Text), true, b"a\nb".to_vec())
        );
    }

    #[test]
    fn masks_differ() {
        assert_ne!(
            (0..8)
                .map(|_| random_mask())
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
    }

    /// A server connection on a connected pair: (its conn, our socket, the client's).
    fn server() -> (Arc<Conn>, std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let ours = listener.accept().unwrap().0;
        let framing = Framing::default();
        let keepalive = Duration::from_secs(30);
        let wire = Wire::plain(ours.try_clone().unwrap());
        let conn = Conn::new(Role::Server, "peer".into(), &framing, keepalive, &wire).unwrap();
        (Arc::new(conn), ours, theirs)
    }

    /// Every frame the client reads until the server closes: (opcode, final, payload).
    fn frames_read(theirs: std::net::TcpStream) -> Vec<(OpCode, bool, Vec<u8>)> {
        let mut socket = FrameSocket::new(theirs);
        let mut frames = Vec::new();
        while let Some(frame) = socket.read(None).expect("whole frames, one after another") {
            let last = describe(&frame);
            frames.push(last.clone());
            if last.0 == OpCode::Control(Control::Close) {
                break;
            }
        }
        frames
    }

    use std::sync::Arc;

    #[test]
    fn straight_writes_are_the_writers_frames_and_stop_while_a_rest_is_owed() {
        let (conn, _ours, _theirs) = server();
        let pieces: [&[u8]; 5] = [b"one\n", b"abc", b"def\n", b"\xff\n", b"two\n"];
        // What the writer would write for them all, from a fresh start.
        let want = conn.wire(&Batch::of(&pieces), &mut false);
        let mut got = Vec::new();
        // All of it taken: nothing left, and a message left open (abc...).
        let all = conn.speak(&Batch::of(&pieces[..2]), &mut |bytes| {
            got.extend_from_slice(bytes);
            bytes.len()
        });
        assert_eq!(all.map(|rest| rest.is_empty()), Some(true));
        assert!(conn.pen().open && !conn.pen().cut);
        // Nothing taken: nothing went, as if never tried.
        let none = conn.speak(&Batch::of(&pieces[2..4]), &mut |_| 0);
        assert!(none.is_none() && conn.pen().open);
        // The writer holds the pen: not even tried.
        {
            let _writing = conn.pen();
            assert!(
                conn.speak(&Batch::of(&pieces[2..4]), &mut |_| panic!("tried"))
                    .is_none()
            );
        }
        // Part taken, mid-frame: the rest, framed, is owed, and nothing else goes.
        let rest = conn
            .speak(&Batch::of(&pieces[2..4]), &mut |bytes| {
                got.extend_from_slice(&bytes[..3]);
                3
            })
            .expect("a rest");
        assert_eq!(rest.pieces(), 2);
        assert!(conn.pen().cut);
        assert!(
            conn.speak(&Batch::of(&pieces[4..]), &mut |_| panic!("tried"))
                .is_none()
        );
        got.extend_from_slice(rest.bytes());
        got.extend_from_slice(
            conn.wire(&Batch::of(&pieces[4..]), &mut conn.pen().open)
                .bytes(),
        );
        assert_eq!(got, want.bytes());
    }

    #[cfg(unix)]
    #[test]
    fn a_control_frame_never_lands_inside_a_frame_a_straight_write_left_unfinished() {
        use crate::endpoint::listen::Shipment;
        use crate::endpoint::unix::WriteNow;
        let (conn, ours, theirs) = server();
        let now = WriteNow::socket(ours.try_clone().unwrap().into());
        // Far more than the socket takes while its client does not read: a straight
        // write stops somewhere inside, the line of a message left open last.
        let lines: Vec<Vec<u8>> = (0..200_000)
            .map(|i| format!("{i:031}\n").into_bytes())
            .collect();
        let mut big: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        big.push(b"open ");
        let rest = conn
            .speak(&Batch::of(&big), &mut |bytes| now.write_what_fits(bytes))
            .expect("a part went");
        assert!(!rest.is_empty() && conn.pen().cut);
        // A pong to send before the rest is even queued: the writer must wait for it.
        let (queue, parcels) = crossbeam_channel::bounded(8);
        conn.control.0.send(Frame::pong(b"p".to_vec())).unwrap();
        let writing = Arc::clone(&conn);
        let wire = Wire::plain(ours.try_clone().unwrap());
        let writer = std::thread::spawn(move || writing.write(wire, Earlier::default(), parcels));
        let reader = std::thread::spawn(move || frames_read(theirs));
        std::thread::sleep(Duration::from_millis(50));
        let pending = Arc::default();
        queue
            .send(Parcel::new(Shipment::framed(rest, None), &pending))
            .unwrap();
        // Behind it, a batch the writer frames itself, which ends the open message.
        queue
            .send(Parcel::new(
                Shipment::new(Batch::of(&[b"end\n"]), None),
                &pending,
            ))
            .unwrap();
        drop(queue);
        writer.join().unwrap().unwrap();
        let frames = reader.join().unwrap();
        let text = OpCode::Data(Data::Text);
        let mut want: Vec<_> = lines
            .iter()
            .map(|line| (text, true, line[..31].to_vec()))
            .collect();
        want.push((OpCode::Data(Data::Binary), false, b"open ".to_vec()));
        want.push((OpCode::Data(Data::Continue), true, b"end".to_vec()));
        let pong = (OpCode::Control(Control::Pong), true, b"p".to_vec());
        let close = frames.last().unwrap().clone();
        assert_eq!(close.0, OpCode::Control(Control::Close));
        // The pong came between two frames, after the rest (it waited for it).
        let at = frames.iter().position(|f| *f == pong).expect("the pong");
        let data: Vec<_> = frames[..frames.len() - 1]
            .iter()
            .filter(|f| **f != pong)
            .cloned()
            .collect();
        assert_eq!(data.len(), want.len());
        assert!(data == want, "the frames differ");
        assert!(
            at >= want.len() - 1,
            "the pong at {at} came before the rest"
        );
    }
}
