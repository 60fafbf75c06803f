//! A connection's reader thread: frames from the socket into the bridge, one message
//! as one line (or, with `--raw` and for the console page, as it comes). Pings and a
//! peer's close are answered through the writer; a frame the protocol forbids fails
//! the connection, with the close frame the writer sends and a moment to send it.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use log::debug;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket};

use super::{Conn, MAX_FRAME, io_error};
use crate::endpoint::contract::Inlet;
use crate::endpoint::tls::wire::Wire;
use crate::endpoint::ws::rules;
use crate::framing::Framing;

/// How long a reader that fails the connection waits for the close frame to go out.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);

impl Conn {
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
}
