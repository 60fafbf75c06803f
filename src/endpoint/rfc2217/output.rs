//! The writing side of an RFC 2217 client's socket, shared by three threads: the
//! client's writer (the port's bytes), its reader (answers and notices) and, for a
//! straight write, the thread handing the port's bytes over. Each writes a whole
//! message under one lock, so an answer never lands inside data. A straight write
//! only tries the lock, and if the socket takes only part of it, the rest (perhaps
//! starting between the two bytes of a doubled 0xFF) is the writer's next parcel:
//! every other message waits until the writer has written it.

use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::telnet;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Batch;

/// A client's socket, for writing.
pub struct Output {
    out: Mutex<Out>,
    /// Signalled when the rest of a straight write is out, or the writer ended.
    uncut: Condvar,
}

/// What the lock holds.
struct Out {
    wire: Wire,
    /// A straight write stopped short: its rest is the writer's next parcel, and
    /// nothing may go on the wire before it.
    cut: bool,
    /// The writer ended: no rest will be written, and no straight write is made.
    ended: bool,
}

impl Output {
    /// Writing to `wire`.
    pub fn new(wire: Wire) -> Output {
        Output {
            out: Mutex::new(Out {
                wire,
                cut: false,
                ended: false,
            }),
            uncut: Condvar::new(),
        }
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `bytes` whole, after the rest of a straight write that stopped short.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.out();
        while out.cut {
            out = self.uncut.wait(out).unwrap_or_else(|e| e.into_inner());
        }
        out.wire.write_all(bytes)
    }

    /// Writes the rest of a straight write, as it is, and lets other messages go.
    pub fn send_rest(&self, rest: &[u8]) -> io::Result<()> {
        let mut out = self.out();
        let sent = out.wire.write_all(rest);
        out.cut = false;
        drop(out);
        self.uncut.notify_all();
        sent
    }

    /// The writer ended: nothing waits for a rest it will not write.
    pub fn writer_ended(&self) {
        let mut out = self.out();
        out.ended = true;
        out.cut = false;
        drop(out);
        self.uncut.notify_all();
    }

    /// A straight write of `batch` through `send` (see `listen::Voice::speak`): the
    /// bytes the writer would write ([`wire`]), with the lock tried and never waited
    /// for; none while a rest is owed or after the writer ended.
    pub fn try_speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch> {
        let mut out = self.out.try_lock().ok()?;
        if out.cut || out.ended {
            return None;
        }
        let mut wire = wire(batch);
        let sent = send(wire.bytes());
        if sent == 0 {
            return None;
        }
        wire.advance(sent);
        out.cut = !wire.is_empty();
        Some(wire)
    }
}

/// `batch` as it goes on the wire, 0xFF doubled, each piece one piece of the result,
/// so that what of it a socket does not take counts the pieces not all out.
pub fn wire(batch: &Batch) -> Batch {
    batch.map(batch.pieces(), telnet::escape)
}
