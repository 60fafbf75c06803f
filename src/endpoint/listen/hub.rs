//! The clients of a listening endpoint, and the ways to them: every piece to every
//! client ([`Broadcast`]), a client that stops reading dropped, the count of pieces
//! that reached nobody, the last lines kept for clients that come later
//! ([`History`], in `history.rs`), and stopping ([`Stopper`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use log::{debug, info, warn};

use super::history::History;
use super::straight::Straight;
use crate::endpoint::contract::{Direct, Dropped, GiveUp, Outbox, Stop, Taken};
use crate::framing::Batch;

/// How long stopping waits for the accepting thread to let go of the port.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// One connected client, as the hub knows it.
pub struct Client {
    pub peer: SocketAddr,
    pub stream: TcpStream,
    /// Its socket, to write to straight from the sending thread (see [`Straight`]),
    /// where its protocol allows.
    pub straight: Option<Arc<Straight>>,
    pub queue: Sender<Parcel>,
    /// Whether it may still send: false once it shut down its sending side.
    pub sending: Arc<AtomicBool>,
    /// Batches queued for it and not yet written.
    pub pending: Arc<AtomicUsize>,
}

/// The hub's state, under its mutex.
#[derive(Default)]
pub struct State {
    pub clients: Vec<Client>,
    /// Connections being greeted that were promised a place.
    pub reserved: usize,
    /// Pieces dropped since the last client left (or since the start).
    pub unheard: u64,
    /// The last pieces sent, for clients that ask for them.
    pub history: History,
}

/// The connected clients, shared by the acceptor, their threads and the outbox.
pub struct Hub {
    pub name: String,
    /// What reached nobody after it was handed over.
    pub late: Arc<Late>,
    pub state: Mutex<State>,
    pub max_clients: usize,
    /// Set when the bridge ends: take no more clients.
    pub stopped: AtomicBool,
}

impl Hub {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a client and closes its socket, which ends its threads.
    pub fn drop_client(&self, peer: SocketAddr, why: &str) {
        let mut state = self.state();
        if let Some(i) = state.clients.iter().position(|c| c.peer == peer) {
            let client = state.clients.remove(i);
            let _ = client.stream.shutdown(Shutdown::Both);
            info!("{}: client {peer} {why}", self.name);
        }
    }

    /// Promises `peer` a place if there is one, making room if a client that stopped
    /// sending holds it.
    pub fn reserve(&self, peer: SocketAddr) -> bool {
        let mut state = self.state();
        if state.clients.len() + state.reserved >= self.max_clients
            && let Some(i) = state
                .clients
                .iter()
                .position(|c| !c.sending.load(Ordering::Acquire))
        {
            let old = state.clients.remove(i);
            let _ = old.stream.shutdown(Shutdown::Both);
            info!(
                "{}: client {} dropped to make room for {peer} (it had stopped sending)",
                self.name, old.peer
            );
        }
        let room = state.clients.len() + state.reserved < self.max_clients;
        state.reserved += usize::from(room);
        room
    }
}

/// The listening endpoint's way out: every piece to every client.
///
/// A client whose queue is full holds the batch back for up to [`STALL`] (the whole
/// direction waits, as it would for one slow port); one that takes nothing in that time
/// has stopped reading and is dropped, so it stalls the others no longer than that.
/// However many stopped reading, the batch waits for them [`STALL`] in all.
pub struct Broadcast(pub Arc<Hub>);

/// The way to one client, taken from the list for one batch.
struct Way {
    peer: SocketAddr,
    queue: Sender<Parcel>,
    /// Batches queued for it and not yet written.
    pending: Arc<AtomicUsize>,
    straight: Option<Arc<Straight>>,
}

impl Way {
    fn of(client: &Client) -> Way {
        Way {
            peer: client.peer,
            queue: client.queue.clone(),
            pending: Arc::clone(&client.pending),
            straight: client.straight.clone(),
        }
    }

    /// Writes `shipment` straight to the client's socket, if nothing waits for its
    /// writer and its socket takes it now; returns what is left for its queue (none
    /// when all of it went). Only the thread that sends to the queues calls it, so an
    /// empty queue stays empty meanwhile, and nothing written here can pass a batch
    /// queued before it. What the socket did not take is in wire bytes already (framed)
    /// and may end mid-frame: it is queued before anything that comes after it, and
    /// nothing goes straight until the writer has written it.
    fn straight(&self, shipment: &Arc<Shipment>) -> Option<Arc<Shipment>> {
        let Some(straight) = &self.straight else {
            return Some(Arc::clone(shipment));
        };
        if self.pending.load(Ordering::Acquire) > 0 {
            return Some(Arc::clone(shipment));
        }
        let Some(rest) = straight.write(&shipment.batch) else {
            return Some(Arc::clone(shipment));
        };
        shipment.written.store(true, Ordering::Release);
        if rest.is_empty() {
            return None;
        }
        // The rest, through its writer, counted as lost if it never goes.
        Some(Shipment::framed(rest, shipment.late.as_ref()))
    }
}

/// How long a client may leave its queue full before it counts as not reading.
const STALL: Duration = Duration::from_secs(1);

impl Broadcast {
    /// Each client's queue, pending count and address, with `batch` kept in the
    /// history in the same hold of the lock: a client that arrives meanwhile finds it
    /// either in the history it is given or in its queue, never both or neither. With
    /// `room`, only if every client's queue has room for it now; else `None`, and
    /// nothing is kept.
    fn take(&self, batch: &Batch, room: bool) -> Option<Vec<Way>> {
        let mut state = self.0.state();
        if room && state.clients.iter().any(|c| c.queue.is_full()) {
            return None;
        }
        state.history.keep(batch);
        Some(state.clients.iter().map(Way::of).collect())
    }

    /// The way to each client.
    fn clients(&self) -> Vec<Way> {
        self.0.state().clients.iter().map(Way::of).collect()
    }

    /// Counts a batch that reached nobody; logs the first of a run.
    fn unheard(&self, batch: &Batch) -> Dropped {
        let hub = &self.0;
        let mut state = hub.state();
        if state.unheard == 0 {
            let kept = match state.history.lines {
                0 => String::new(),
                n => format!(" (the last {n} are kept for a page that opens, see history=)"),
            };
            info!(
                "{}: no client connected; dropping lines until one connects{kept}",
                hub.name
            );
        }
        state.unheard += batch.pieces() as u64;
        Dropped::all(batch)
    }

    /// Drops a client that took nothing for [`STALL`].
    fn stalled(&self, peer: SocketAddr, pending: &AtomicUsize) {
        let hub = &self.0;
        let waiting = pending.load(Ordering::Acquire) as u64;
        warn!(
            "{}: client {peer} is not reading; dropped it ({} it had not taken are lost to it)",
            hub.name,
            crate::words::count(waiting, "batch")
        );
        hub.drop_client(peer, "dropped");
    }
}

impl Outbox for Broadcast {
    fn retracted(&mut self) -> Dropped {
        self.0.late.take()
    }

    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        let clients = self.take(batch, false).unwrap_or_default();
        if clients.is_empty() {
            return Ok(self.unheard(batch));
        }
        let batch = Shipment::new(batch.clone(), Some(&self.0.late));
        // One wait for them all: clients that stopped reading hold the batch back for
        // STALL in all, not each in turn.
        let deadline = Instant::now() + STALL;
        for way in clients {
            let Some(rest) = way.straight(&batch) else {
                continue;
            };
            let parcel = Parcel::new(rest, &way.pending);
            if let Err(SendTimeoutError::Timeout(_)) = way.queue.send_deadline(parcel, deadline) {
                self.stalled(way.peer, &way.pending);
            }
        }
        Ok(Dropped::default())
    }

    /// Waits until every client has written what it was given, or the bridge gives up.
    fn finish(&mut self, give_up: &GiveUp) {
        let pending = || {
            self.clients()
                .iter()
                .any(|way| way.pending.load(Ordering::Acquire) > 0)
        };
        wait_drained(pending, give_up);
    }
}

impl Direct for Broadcast {
    /// Takes the whole batch if every client has room for it now, else nothing.
    fn try_send(&mut self, batch: &Batch) -> Taken {
        let Some(clients) = self.take(batch, true) else {
            return Taken::default();
        };
        let all = batch.bytes().len();
        if clients.is_empty() {
            return Taken {
                bytes: all,
                dropped: self.unheard(batch),
            };
        }
        let batch = Shipment::new(batch.clone(), Some(&self.0.late));
        for way in clients {
            let Some(rest) = way.straight(&batch) else {
                continue;
            };
            // Only this thread adds to the queues now (the route lock is held), so the
            // room seen above is still there; a client that left meanwhile is gone.
            if let Err(TrySendError::Full(_)) = way.queue.try_send(Parcel::new(rest, &way.pending))
            {
                self.stalled(way.peer, &way.pending);
            }
        }
        Taken {
            bytes: all,
            dropped: Dropped::default(),
        }
    }
}

/// Stops the running listener: no more clients, and those connected are closed.
pub struct Stopper {
    pub hub: Arc<Hub>,
    pub local: SocketAddr,
    /// Disconnected once the accepting thread has ended.
    pub done: Receiver<()>,
}

impl Stop for Stopper {
    fn stop(self: Box<Self>, deadline: Instant) {
        self.hub.stopped.store(true, Ordering::Release);
        for client in self.hub.state().clients.drain(..) {
            // Its queue goes with it, so its writer ends after a goodbye (a WebSocket
            // close frame); a writer still stuck on lines it could not send is cut off.
            let how = match client.pending.load(Ordering::Acquire) {
                0 => Shutdown::Read,
                _ => Shutdown::Both,
            };
            let _ = client.stream.shutdown(how);
        }
        // Wake the acceptor from `accept` with a connection of our own; it sees the
        // flag, closes it and ends, letting go of the port.
        let ip = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let wake = SocketAddr::new(ip, self.local.port());
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), STOP_WAIT);
        if let Err(e) = TcpStream::connect_timeout(&wake, wait) {
            debug!("{}: could not wake the listener: {e}", self.hub.name);
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = self.done.recv_timeout(wait.min(STOP_WAIT));
    }
}

/// Pieces counted as delivered when they were handed over that reached nobody after
/// all: every client they were queued for was dropped before writing them.
#[derive(Debug, Default)]
pub struct Late {
    pieces: AtomicUsize,
    bytes: AtomicUsize,
}

impl Late {
    /// What was lost since the last time asked.
    pub fn take(&self) -> Dropped {
        Dropped {
            pieces: self.pieces.swap(0, Ordering::AcqRel),
            bytes: self.bytes.swap(0, Ordering::AcqRel),
        }
    }
}

/// One batch handed over, shared by the parcels of every client it went to: if none of
/// them was written, its pieces are counted in `late` when the last parcel goes.
pub struct Shipment {
    batch: Batch,
    /// Its bytes are wire bytes already: the rest of a straight write, which its
    /// writer writes as they are, before anything else.
    framed: bool,
    written: AtomicBool,
    late: Option<Arc<Late>>,
}

impl Shipment {
    /// `batch`, whose loss after it was handed over is counted in `late`, if given.
    pub fn new(batch: Batch, late: Option<&Arc<Late>>) -> Arc<Shipment> {
        Arc::new(Shipment {
            batch,
            framed: false,
            written: AtomicBool::new(false),
            late: late.cloned(),
        })
    }

    /// The rest of a straight write, in wire bytes, for the writer to write as it is.
    pub fn framed(rest: Batch, late: Option<&Arc<Late>>) -> Arc<Shipment> {
        Arc::new(Shipment {
            batch: rest,
            framed: true,
            written: AtomicBool::new(false),
            late: late.cloned(),
        })
    }
}

impl Drop for Shipment {
    fn drop(&mut self) {
        if let (false, Some(late)) = (self.written.load(Ordering::Acquire), &self.late) {
            late.pieces.fetch_add(self.batch.pieces(), Ordering::AcqRel);
            late.bytes
                .fetch_add(self.batch.bytes().len(), Ordering::AcqRel);
        }
    }
}

/// A batch on its way to one client. It counts as pending for that client until it is
/// dropped, written or not, so that stopping can wait until every client has its lines.
pub struct Parcel {
    shipment: Arc<Shipment>,
    pending: Arc<AtomicUsize>,
}

impl Parcel {
    /// `shipment`, counted in `pending` until dropped.
    pub fn new(shipment: Arc<Shipment>, pending: &Arc<AtomicUsize>) -> Parcel {
        pending.fetch_add(1, Ordering::AcqRel);
        Parcel {
            shipment,
            pending: Arc::clone(pending),
        }
    }

    /// Whether its bytes are wire bytes already, the rest of a straight write that
    /// stopped (perhaps mid-frame): its writer writes them as they are, before
    /// anything else it writes. Only a protocol with a framing [`super::Voice`] sees one
    /// whose bytes differ from the batch's.
    pub fn framed(&self) -> bool {
        self.shipment.framed
    }

    /// Its client wrote it: the batch reached someone.
    pub fn written(&self) {
        self.shipment.written.store(true, Ordering::Release);
    }
}

impl std::ops::Deref for Parcel {
    type Target = Batch;
    fn deref(&self) -> &Batch {
        &self.shipment.batch
    }
}

impl Drop for Parcel {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often stopping looks whether the parcels handed over have gone out.
const DRAIN_TICK: Duration = Duration::from_millis(10);

/// Waits until `pending()` says nothing is left to send, or the bridge gives up
/// waiting: an outbox's `finish`.
pub fn wait_drained(mut pending: impl FnMut() -> bool, give_up: &GiveUp) {
    while pending() && !give_up.now() {
        thread::sleep(DRAIN_TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair on loopback: (ours, the client's).
    #[cfg(unix)]
    fn pair() -> (TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener.accept().unwrap().0, client)
    }

    #[cfg(unix)]
    fn way(stream: &TcpStream) -> (Way, Receiver<Parcel>) {
        let (queue, rx) = crossbeam_channel::bounded(8);
        let way = Way {
            peer: stream.peer_addr().unwrap(),
            queue,
            pending: Arc::default(),
            straight: Straight::new(stream, Arc::new(super::super::straight::AsIs)).unwrap(),
        };
        (way, rx)
    }

    #[cfg(unix)]
    #[test]
    fn a_batch_goes_straight_and_what_does_not_fit_goes_to_the_writer() {
        use std::io::Read;
        let (ours, mut theirs) = pair();
        let (way, rx) = way(&ours);
        let late = Arc::new(Late::default());
        // Fits: written here, nothing for the writer, counted as reaching someone.
        let small = Shipment::new(Batch::of(&[b"one\n", b"two\n"]), Some(&late));
        assert!(way.straight(&small).is_none());
        assert!(small.written.load(Ordering::Acquire));
        let mut got = [0u8; 8];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one\ntwo\n");
        // More than the socket takes while its reader waits: the rest, from where the
        // write stopped (perhaps mid-line), is for the writer.
        let lines: Vec<Vec<u8>> = (0..2_000_000)
            .map(|i| format!("{i:09}\n").into_bytes())
            .collect();
        let all: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let big = Shipment::new(Batch::of(&all), Some(&late));
        let rest = way.straight(&big).expect("a rest for the writer");
        let whole = big.batch.bytes();
        let sent = whole.len() - rest.batch.bytes().len();
        assert!(sent > 0 && rest.batch.bytes() == &whole[sent..]);
        // While a parcel waits for the writer, nothing goes straight: it would pass it.
        let parcel = Parcel::new(Arc::clone(&rest), &way.pending);
        way.queue.send(parcel).unwrap();
        let after = Shipment::new(Batch::of(&[b"after\n"]), Some(&late));
        let queued = way.straight(&after).expect("queued behind the parcel");
        assert!(Arc::ptr_eq(&queued, &after));
        // The client reads the straight part, then what the writer writes, in order.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            theirs.read_to_end(&mut all).unwrap();
            all
        });
        let mut ours = ours;
        use std::io::Write;
        let parcel = rx.recv().unwrap();
        ours.write_all(parcel.bytes()).unwrap();
        parcel.written();
        drop(parcel);
        ours.write_all(queued.batch.bytes()).unwrap();
        ours.shutdown(Shutdown::Write).unwrap();
        let read = reader.join().unwrap();
        assert_eq!(&read[..whole.len()], whole);
        assert_eq!(&read[whole.len()..], b"after\n");
        assert_eq!(late.take(), Dropped::default());
    }

    #[cfg(unix)]
    #[test]
    fn a_gone_client_takes_nothing_straight() {
        let (ours, theirs) = pair();
        let (way, _rx) = way(&ours);
        drop(theirs);
        ours.shutdown(Shutdown::Both).unwrap();
        let late = Arc::new(Late::default());
        let shipment = Shipment::new(Batch::of(&[b"x\n"]), Some(&late));
        let rest = way.straight(&shipment).expect("left to the writer");
        assert!(Arc::ptr_eq(&rest, &shipment));
        drop(rest);
        drop(shipment);
        assert_eq!(late.take().pieces, 1);
    }
}
