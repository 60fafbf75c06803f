//! Straight writes: a batch written to a client's socket by the thread that hands it
//! over, when nothing is queued for the client's writer thread, so that a device
//! handing over one line at a time costs a `send` per client, not a wake-up of each
//! client's writer. [`Straight`] is the socket side (Unix, `MSG_DONTWAIT`; none
//! elsewhere); a protocol's [`Voice`] says what bytes a batch goes out as and keeps its
//! own writer off the socket meanwhile. The rules that make it safe (nothing goes
//! straight while a parcel is pending; a rest goes first) are in `hub.rs`.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use crate::framing::Batch;

/// A protocol's part in a straight write to one client.
pub trait Voice: Send + Sync {
    /// Puts `batch` on the client's socket through `send` (which takes what the socket
    /// takes now and says how much), as the client's writer would have put it, with the
    /// writer kept off the socket meanwhile. Never waits: if the writer is writing now,
    /// nothing is sent.
    ///
    /// `None` if nothing went: the batch goes to the writer as it is. Otherwise what
    /// the socket did not take, as wire bytes (empty when all of it went), one piece
    /// per piece of `batch` that is not all out: the writer writes it as it is (see
    /// `Parcel::framed`), before anything else.
    fn speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch>;
}

/// The voice of a protocol whose bytes go out as they are (TCP line clients): its
/// writer only ever writes parcels, and none is pending during a straight write, so
/// there is nothing to keep off the socket.
pub struct AsIs;

impl Voice for AsIs {
    fn speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch> {
        match send(batch.bytes()) {
            0 => None,
            n if n == batch.bytes().len() => Some(Batch::default()),
            n => {
                let mut rest = batch.clone();
                rest.advance(n);
                Some(rest)
            }
        }
    }
}

/// A client's socket written to straight from the thread that hands a batch over, in
/// its protocol's [`Voice`]. Only for sockets whose bytes are the protocol's (not
/// TLS), on Unix; a write that would wait is left to the writer.
pub struct Straight {
    #[cfg(unix)]
    socket: crate::endpoint::unix::WriteNow,
    voice: Arc<dyn Voice>,
}

impl Straight {
    /// For `stream`, spoken to in `voice`, where straight writes can be made (Unix);
    /// `None` elsewhere.
    pub fn new(stream: &TcpStream, voice: Arc<dyn Voice>) -> io::Result<Option<Arc<Straight>>> {
        #[cfg(unix)]
        {
            let socket = crate::endpoint::unix::WriteNow::socket(stream.try_clone()?.into());
            Ok(Some(Arc::new(Straight { socket, voice })))
        }
        #[cfg(not(unix))]
        {
            let _ = (stream, voice);
            Ok(None)
        }
    }

    /// Writes what of `batch` fits now: see [`Voice::speak`].
    pub fn write(&self, batch: &Batch) -> Option<Batch> {
        self.voice
            .speak(batch, &mut |bytes| self.write_what_fits(bytes))
    }

    /// Writes what fits now; how much.
    fn write_what_fits(&self, data: &[u8]) -> usize {
        #[cfg(unix)]
        {
            self.socket.write_what_fits(data)
        }
        #[cfg(not(unix))]
        {
            let _ = data;
            0
        }
    }
}
