//! A started UDP endpoint: the reader thread, the ways out, the stop.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, bounded};
use log::warn;

use super::socket::{COMPLAIN_EVERY, MAX_DATAGRAM_V6, Socket, unreachable};
use crate::endpoint::contract::{
    Direct, Dropped, GiveUp, Inbox, Inlet, Outbox, Running, Start, Stop, Taken,
};
use crate::framing::Batch;
use crate::words::count;

impl Start for Arc<Socket> {
    fn start(
        self: Box<Self>,
        name: &str,
        inbox: Box<dyn Inbox>,
        give_up: GiveUp,
    ) -> io::Result<Running> {
        let socket = *self;
        let mut inlet = inbox.open(name);
        // The reader's inlet is the socket's only source.
        drop(inbox);
        let (done_tx, done_rx) = bounded::<()>(0);
        let reader = Arc::clone(&socket);
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let _done = done_tx;
                if let Err(e) = read(&reader, &mut *inlet) {
                    inlet.fail(e);
                }
            })?;
        let out = Out {
            socket: Arc::clone(&socket),
            give_up,
        };
        Ok(Running {
            outbox: Box::new(out.clone()),
            direct: match cfg!(unix) {
                true => Some(Box::new(out)),
                false => None,
            },
            stop: Box::new(Stopper {
                socket,
                done: done_rx,
            }),
        })
    }
}

/// The reader: each datagram into `inlet` as one message, until a stop or a bridge that
/// takes no more (`Ok`), or a receive that fails for good.
fn read(socket: &Socket, inlet: &mut dyn Inlet) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM_V6 + 1];
    let mut drops = Drops {
        seen: socket.kernel_drops().unwrap_or(0),
        said: None,
    };
    let end = loop {
        let got = socket.recv(&mut buf, &mut || drops.check(socket, inlet));
        match got {
            Ok(None) => break Ok(()),
            Ok(Some((n, from))) => {
                socket.heard(from);
                if !inlet.message(&buf[..n]) {
                    break Ok(());
                }
            }
            Err(e) if unreachable(&e) => socket.refusal(&e),
            Err(e) => break Err(e),
        }
    };
    // What the kernel dropped while the reader waited for the bridge counts too.
    drops.check(socket, inlet);
    end
}

/// The kernel's count of datagrams it dropped at the socket, as far as the reader has
/// passed it on.
struct Drops {
    seen: u32,
    /// When a drop was last logged.
    said: Option<Instant>,
}

impl Drops {
    /// Passes on what the kernel dropped since the last look, and logs it (at most
    /// every [`COMPLAIN_EVERY`]).
    fn check(&mut self, socket: &Socket, inlet: &mut dyn Inlet) {
        let Some(now) = socket.kernel_drops() else {
            return;
        };
        let new = now.wrapping_sub(self.seen);
        self.seen = now;
        if new == 0 {
            return;
        }
        inlet.missed(u64::from(new));
        if self.said.is_none_or(|at| at.elapsed() >= COMPLAIN_EVERY) {
            self.said = Some(Instant::now());
            warn!(
                "{}: the kernel dropped {}, its receive buffer full (they arrive faster \
                 than the other side takes them); counted as dropped",
                socket.name,
                count(u64::from(new), "datagram")
            );
        }
    }
}

/// The socket's way in from the bridge.
#[derive(Clone)]
struct Out {
    socket: Arc<Socket>,
    give_up: GiveUp,
}

impl Outbox for Out {
    /// Sends every piece; what the kernel would not send is counted as dropped, never
    /// an error.
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        Ok(self.socket.deliver(batch, false, &self.give_up).dropped)
    }
}

impl Direct for Out {
    /// Whole pieces, up to the first that finds no room in the socket.
    fn try_send(&mut self, batch: &Batch) -> Taken {
        self.socket.deliver(batch, true, &self.give_up)
    }
}

/// Stops the reader and waits for it, so the port is free again.
struct Stopper {
    socket: Arc<Socket>,
    done: Receiver<()>,
}

impl Stop for Stopper {
    fn stop(self: Box<Self>, deadline: Instant) {
        self.socket.stopped.store(true, Ordering::Release);
        #[cfg(unix)]
        let _ = self.socket.wake.0.shutdown(std::net::Shutdown::Both);
        let _ = self.done.recv_deadline(deadline);
    }
}
