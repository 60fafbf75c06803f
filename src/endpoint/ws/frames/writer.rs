//! A connection's writer thread: a console page's hello first (`hello.rs`), then
//! every batch of its queue out as frames, the reader's control frames (pongs, a
//! close) and a ping every keepalive period, with the [`Pen`] held while it writes. A straight write may have left the rest of a
//! frame owed (`voice.rs`): it is written first, so that nothing lands inside it.

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, select};
use log::info;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket};

use super::{Conn, Pen, io_error};
use crate::endpoint::listen::{Earlier, Parcel};
use crate::endpoint::tls::wire::Wire;

impl Conn {
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
}
