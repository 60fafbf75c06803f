//! A running broker connection: its threads, the outbox the bridge publishes through,
//! and the guard that says goodbye.
//!
//! - The **reader** thread ([`super::receive`]) decodes packets: PUBLISH payloads go to
//!   the bridge through the connection's one inlet, PUBACKs to the [`Session`]. When
//!   the connection ends it marks the link dead and fails the inlet with the reason,
//!   which the bridge takes as the endpoint closing.
//! - The **writer** thread owns every write: buffers from the outbox, acknowledgements
//!   from the reader, a PINGREQ every keepalive, and at a clean stop the retained
//!   `offline` and DISCONNECT. Its queue is bounded, so the bridge's writer waits while
//!   the broker catches up: backpressure on this direction only.
//! - The **guard** ([`Stopper`]) asks the writer for the goodbye, waits (bounded) for
//!   the broker to close, then shuts the socket, which ends both threads.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use log::{info, warn};

use super::codec::{self, OFFLINE};
use super::connection::{Command, Link};
use super::receive::{Early, Handover, Input, Reader};
use super::session::{Session, UNACKED};
use super::settings::Settings;
use crate::endpoint::contract::{
    Direct, Dropped, GiveUp, Inbox, Outbox, Running, Start, Stop, Taken,
};
use crate::endpoint::stream::READ_BUFFER;
use crate::endpoint::tls::wire::Wire;
use crate::framing::{Batch, Framing};

/// Buffers waiting for the writer thread. Each holds a whole batch of publishes, so a
/// few keep the socket busy; the bridge's writer waits beyond that.
const LINK_QUEUE: usize = 4;

/// QoS 1 publishes registered and sent at a time: a whole read of short lines.
const WINDOW: usize = 1024;

/// How long the goodbye may take: for the writer to take it, and for the broker to
/// close the connection after DISCONNECT.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// A connection that finished its handshake, waiting for the bridge to start it.
pub struct Opened {
    pub name: String,
    pub settings: Settings,
    pub stream: Wire,
    /// Bytes the handshake read past the SUBACK.
    pub leftover: Vec<u8>,
    /// Messages that arrived before the SUBACK.
    pub early: Vec<Early>,
    /// With QoS 1.
    pub session: Option<Arc<Session>>,
    pub framing: Framing,
    /// How long the broker may stay silent before the connection counts as dead.
    pub silence: Duration,
}

impl Start for Opened {
    fn start(self: Box<Self>, _: &str, inbox: Box<dyn Inbox>, _: GiveUp) -> io::Result<Running> {
        let s = &self.settings;
        let (tx, rx) = bounded(LINK_QUEUE);
        let (mut connection, mut resent) = (0, 0);
        if let Some(session) = &self.session {
            let (number, resend, count) = session.begin();
            connection = number;
            if count > 0 {
                info!(
                    "{}: publishing {count} unacknowledged lines again",
                    self.name
                );
                resent = count;
                tx.try_send(Command::Publish(resend, count))
                    .expect("a new queue has room");
            }
        }
        let link = Arc::new(Link {
            name: self.name.clone(),
            connection,
            dead: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            session: self.session.clone(),
            error: Mutex::new(None),
            handed: AtomicUsize::new(resent),
            published: AtomicUsize::new(0),
        });
        let mut farewell = Vec::new();
        if let Some(status) = &s.status {
            codec::publish(&mut farewell, status, OFFLINE, 0, 0, true);
        }
        farewell.extend_from_slice(&codec::DISCONNECT);
        let keepalive = Duration::from_secs(u64::from(s.keepalive));
        let (out, l) = (self.stream.try_clone()?, Arc::clone(&link));
        thread::Builder::new()
            .name(format!("send {}", self.name))
            .spawn(move || write_loop(&l, out, &rx, keepalive, farewell))?;
        let inlet = inbox.open(&self.name);
        // The connection's inlet is the direction's only source: once it ends, the
        // bridge sees the endpoint close.
        drop(inbox);
        let (done_tx, done) = bounded::<()>(0);
        let input = Input::new(self.stream.try_clone()?, self.leftover);
        let (whole, delimiter) = match &self.framing {
            Framing::Lines {
                max_line,
                delimiter,
            } => (*max_line, Some(delimiter.clone())),
            Framing::Raw => (READ_BUFFER, None),
        };
        let reader = Reader {
            link: Arc::clone(&link),
            handover: Handover::new(inlet, whole, delimiter, s.subscribe.clone(), &self.name),
            acks: tx.clone(),
            silence: self.silence,
            done: done_tx,
        };
        let early = self.early;
        thread::Builder::new()
            .name(format!("receive {}", self.name))
            .spawn(move || reader.run(input, early))?;
        let publish = s.publish.as_ref().map(|topic| Publishing {
            topic: topic.clone(),
            qos: s.qos,
            retain: s.retain,
            delimiter: match &self.framing {
                Framing::Lines { delimiter, .. } => Some(delimiter.clone()),
                Framing::Raw => None,
            },
        });
        let out = Out {
            link: Arc::clone(&link),
            tx: tx.clone(),
            publish: publish.map(Arc::new),
            warned: false,
        };
        // The direct route takes whole batches at QoS 0 only: at QoS 1 a line counts as
        // written once acknowledged, which is never at once.
        let direct = (s.qos == 0).then(|| Box::new(out.clone()) as Box<dyn Direct>);
        Ok(Running {
            outbox: Box::new(out),
            direct,
            stop: Box::new(Stopper {
                link,
                tx,
                stream: self.stream,
                done,
            }),
        })
    }
}

/// The writer thread: see the module documentation.
///
/// It pings every keepalive whatever else it writes: the PINGRESP is what tells the
/// reader the broker is alive when nothing else comes back (a bridge that only
/// publishes at QoS 0 hears nothing otherwise).
fn write_loop(
    link: &Link,
    mut out: Wire,
    rx: &Receiver<Command>,
    keepalive: Duration,
    farewell: Vec<u8>,
) {
    let mut ping_at = Instant::now() + keepalive;
    loop {
        let (bytes, stop, publishes): (Cow<'_, [u8]>, bool, usize) = match rx.recv_deadline(ping_at)
        {
            Ok(Command::Write(bytes)) => (bytes.into(), false, 0),
            Ok(Command::Publish(bytes, count)) => (bytes.into(), false, count),
            Ok(Command::Stop) => (farewell.as_slice().into(), true, 0),
            Err(RecvTimeoutError::Timeout) => (Cow::Borrowed(&[]), false, 0),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut result = out.write_all(&bytes);
        if result.is_ok() {
            link.published.fetch_add(publishes, Ordering::Relaxed);
        }
        if result.is_ok() && !stop && Instant::now() >= ping_at {
            result = out.write_all(&codec::PINGREQ);
            ping_at = Instant::now() + keepalive;
        }
        if let Err(e) = result {
            if !link.stopping.load(Ordering::Acquire) {
                let mut error = link.error.lock().unwrap_or_else(|e| e.into_inner());
                error.get_or_insert(e);
            }
            link.kill();
            // Wakes the reader, which reports the error.
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
        if stop {
            // The broker closes the connection once it reads DISCONNECT.
            let _ = out.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// How lines become PUBLISH packets.
struct Publishing {
    topic: String,
    qos: u8,
    retain: bool,
    /// Stripped from the end of each piece (none with `--raw`).
    delimiter: Option<Vec<u8>>,
}

impl Publishing {
    fn encode(&self, out: &mut Vec<u8>, piece: &[u8], pid: u16) {
        let payload = match &self.delimiter {
            Some(delimiter) => piece.strip_suffix(delimiter.as_slice()).unwrap_or(piece),
            None => piece,
        };
        codec::publish(out, &self.topic, payload, self.qos, pid, self.retain);
    }

    /// All of `batch`, encoded at QoS 0.
    fn encode_all(&self, batch: &Batch) -> Vec<u8> {
        let overhead = self.topic.len() + 8;
        let mut out = Vec::with_capacity(batch.bytes().len() + batch.pieces() * overhead);
        batch
            .iter()
            .for_each(|piece| self.encode(&mut out, piece, 0));
        out
    }
}

/// The connection's way in from the bridge.
#[derive(Clone)]
struct Out {
    link: Arc<Link>,
    tx: Sender<Command>,
    /// `None` without `pub=`: lines for it reach nobody.
    publish: Option<Arc<Publishing>>,
    /// Whether "no pub= topic" was logged.
    warned: bool,
}

impl Out {
    /// QoS 1: registers the pieces in the session, a window at a time, and sends
    /// them, waiting first while [`UNACKED`] lines are in flight. A registered piece
    /// counts as written: the session keeps it until its PUBACK arrives, and a
    /// reconnect sends it again. (Waiting for each PUBACK would let a slow port on the
    /// other side hold back this direction: PUBACKs arrive behind the messages for
    /// it.)
    fn send_acknowledged(&self, publish: &Publishing, batch: &Batch) -> io::Result<Dropped> {
        let session = self.link.session.as_ref().expect("QoS 1 has a session");
        let (dead, connection) = (&self.link.dead, self.link.connection);
        let pieces: Vec<&[u8]> = batch.iter().collect();
        let mut kept = 0;
        for window in pieces.chunks(WINDOW) {
            // False once the connection is dead; `register` then decides.
            session.wait(UNACKED - window.len(), dead, None);
            let mut buf = Vec::new();
            let encode = |out: &mut Vec<u8>, piece: &[u8], pid| publish.encode(out, piece, pid);
            if !session.register(connection, window.iter().copied(), dead, &mut buf, encode) {
                break;
            }
            kept += window.len();
            self.link.handed.fetch_add(window.len(), Ordering::Relaxed);
            if self.tx.send(Command::Publish(buf, window.len())).is_err() {
                // The writer is gone, and the connection with it; the session keeps
                // what was registered for the next one.
                break;
            }
        }
        match kept {
            0 if !pieces.is_empty() => Err(self.link.lost()),
            _ => Ok(Dropped {
                pieces: pieces.len() - kept,
                bytes: pieces[kept..].iter().map(|p| p.len()).sum(),
            }),
        }
    }

    /// Counts a batch for an endpoint without `pub=` as reaching nobody.
    fn unheard(&mut self, batch: &Batch) -> Dropped {
        if !self.warned {
            self.warned = true;
            warn!(
                "{}: no pub= topic; lines from the other side are dropped",
                self.link.name
            );
        }
        Dropped::all(batch)
    }
}

impl Outbox for Out {
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        let Some(publish) = self.publish.clone() else {
            return Ok(self.unheard(batch));
        };
        if publish.qos == 1 {
            return self.send_acknowledged(&publish, batch);
        }
        if self.link.is_dead() {
            return Err(self.link.lost());
        }
        self.tx
            .send(Command::Write(publish.encode_all(batch)))
            .map_err(|_| self.link.lost())?;
        Ok(Dropped::default())
    }
}

impl Direct for Out {
    /// QoS 0 only: the whole batch if the writer's queue has room, else nothing.
    fn try_send(&mut self, batch: &Batch) -> Taken {
        let all = Taken {
            bytes: batch.bytes().len(),
            dropped: Dropped::default(),
        };
        let Some(publish) = self.publish.clone() else {
            return Taken {
                dropped: self.unheard(batch),
                ..all
            };
        };
        if self.link.is_dead() {
            return Taken::default();
        }
        match self.tx.try_send(Command::Write(publish.encode_all(batch))) {
            Ok(()) => all,
            Err(_) => Taken::default(),
        }
    }
}

/// The running connection's guard: see the module documentation.
struct Stopper {
    link: Arc<Link>,
    tx: Sender<Command>,
    stream: Wire,
    /// Disconnected once the reader thread has ended.
    done: Receiver<()>,
}

impl Stop for Stopper {
    fn stop(self: Box<Self>, deadline: Instant) {
        self.link.stopping.store(true, Ordering::Release);
        let wait = || {
            deadline
                .saturating_duration_since(Instant::now())
                .min(STOP_WAIT)
        };
        if let Some(session) = &self.link.session {
            // Lines published a moment ago: give their PUBACKs a moment to arrive.
            session.wait(0, &self.link.dead, Some(Instant::now() + wait()));
        }
        if !self.link.is_dead() && self.tx.send_timeout(Command::Stop, wait()).is_ok() {
            let _ = self.done.recv_timeout(wait());
        }
        self.link.kill();
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(session) = &self.link.session {
            let left = session.unacknowledged(self.link.connection);
            let handed = self.link.handed.load(Ordering::Relaxed);
            let unsent = handed
                .saturating_sub(self.link.published.load(Ordering::Relaxed))
                .min(left);
            let count = |n| crate::words::count(n as u64, "line");
            let name = &self.link.name;
            match (left - unsent, unsent) {
                (0, 0) => {}
                (sent, 0) => warn!(
                    "{name}: {} published at QoS 1 never acknowledged by the broker",
                    count(sent)
                ),
                (0, unsent) => warn!(
                    "{name}: {} for QoS 1 never sent: the broker stopped taking them",
                    count(unsent)
                ),
                (sent, unsent) => warn!(
                    "{name}: {} published at QoS 1 never acknowledged by the broker, and {} \
                     never sent",
                    count(sent),
                    unsent
                ),
            }
        }
    }
}
