//! The clients of a listening endpoint, and the ways to them: every piece to every
//! client ([`Broadcast`]), a client that stops reading dropped, the count of pieces
//! that reached nobody, and stopping ([`Stopper`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, info, warn};

use crate::endpoint::{Dropped, Outbox, SendNow, Taken};
use crate::framing::Batch;

/// How long stopping waits for the accepting thread to let go of the port.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// One connected client, as the hub knows it.
pub struct Client {
    pub peer: SocketAddr,
    pub stream: TcpStream,
    pub queue: Sender<Arc<Batch>>,
    /// Whether it may still send: false once it shut down its sending side.
    pub sending: Arc<AtomicBool>,
}

/// The hub's state, under its mutex.
#[derive(Default)]
pub struct State {
    pub clients: Vec<Client>,
    /// Connections being greeted that were promised a place.
    pub reserved: usize,
    /// Pieces dropped since the last client left (or since the start).
    pub unheard: u64,
}

/// The connected clients, shared by the acceptor, their threads and the outbox.
pub struct Hub {
    pub name: String,
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

/// The listening endpoint's way out: every piece to every client, never waiting.
pub struct Broadcast(pub Arc<Hub>);

impl Broadcast {
    /// Queues `batch` for every client; returns whether any client got it.
    fn offer(&self, batch: &Batch) -> bool {
        let hub = &self.0;
        let batch = Arc::new(batch.clone());
        let mut stalled = Vec::new();
        let reached = {
            let mut state = hub.state();
            for client in &state.clients {
                match client.queue.try_send(Arc::clone(&batch)) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => stalled.push(client.peer),
                }
            }
            let reached = !state.clients.is_empty();
            if !reached {
                if state.unheard == 0 {
                    info!(
                        "{}: no client connected; dropping lines until one connects",
                        hub.name
                    );
                }
                state.unheard += batch.pieces() as u64;
            }
            reached
        };
        for peer in stalled {
            warn!("{}: client {peer} is not reading; dropped it", hub.name);
            hub.drop_client(peer, "dropped");
        }
        reached
    }
}

impl Outbox for Broadcast {
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        match self.offer(batch) {
            true => Ok(Dropped::default()),
            false => Ok(Dropped::all(batch)),
        }
    }
}

impl SendNow for Broadcast {
    fn send_now(&mut self, batch: &Batch) -> Taken {
        let dropped = match self.offer(batch) {
            true => Dropped::default(),
            false => Dropped::all(batch),
        };
        Taken {
            bytes: batch.bytes().len(),
            dropped,
        }
    }
}

/// The running listener's guard: dropping it stops taking clients and closes them.
pub struct Stopper {
    pub hub: Arc<Hub>,
    pub local: SocketAddr,
    /// Disconnected once the accepting thread has ended.
    pub done: Receiver<()>,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.hub.stopped.store(true, Ordering::Release);
        for client in self.hub.state().clients.drain(..) {
            let _ = client.stream.shutdown(Shutdown::Both);
        }
        // Wake the acceptor from `accept` with a connection of our own; it sees the
        // flag, closes it and ends, letting go of the port.
        let ip = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let wake = SocketAddr::new(ip, self.local.port());
        if let Err(e) = TcpStream::connect_timeout(&wake, STOP_WAIT) {
            debug!("{}: could not wake the listener: {e}", self.hub.name);
            return;
        }
        let _ = self.done.recv_timeout(STOP_WAIT);
    }
}
