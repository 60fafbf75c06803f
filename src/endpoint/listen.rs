//! `tcp-listen://[ADDR:]PORT`: a TCP server for line clients, a message endpoint.
//!
//! Clients come and go while the bridge runs, up to `--max-clients` at once; one more
//! gets a one-line refusal and is closed. Each client has a reader thread that pumps
//! what it sends into an inlet of its own (see [`super::Inbox`]), so the bridge frames
//! each client's lines separately and they reach the other side whole, never
//! interleaved with another client's.
//!
//! Every piece for the endpoint goes to every client ([`Broadcast`]): copied to the
//! client's bounded queue, drained by the client's writer thread. A client whose queue
//! is full (it stopped reading) is dropped, with a log line, so it cannot stall the
//! others or the bridge. Pieces that arrive while no client is connected reach nobody:
//! the first such drop is logged, and the total when a client arrives; the summary
//! counts them as dropped.
//!
//! A client that shuts down its sending side (`nc -N`) is still a reader: it gets lines
//! until it closes or a write to it fails. If a newcomer needs its place, the client
//! that stopped sending longest ago makes room.
//!
//! Without an address the listener binds 127.0.0.1: serving other machines must be
//! asked for (`tcp-listen://0.0.0.0:PORT`), since the bridge has no authentication.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::{debug, info, warn};

use super::{Dropped, Inbox, Messages, OpenOptions, Outbox, Running, SendNow, Shape, Taken};
use crate::framing::Batch;

/// Batches waiting to be written to one client. A client this far behind has
/// stopped reading and is dropped.
const CLIENT_QUEUE: usize = 256;

/// How long stopping waits for the accepting thread to let go of the port.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// A `tcp-listen://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Where to listen.
    pub addr: SocketAddr,
}

/// Parses `[ADDR:]PORT` of `tcp-listen://[ADDR:]PORT`.
pub fn parse(text: &str, rest: &str) -> Result<Listen, String> {
    let (addr, port) = match rest.rsplit_once(':') {
        Some((addr, port)) => (Some(addr), port),
        None => (None, rest),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
    let ip = match addr {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(addr) => addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!(
                    "{text}: '{addr}' must be an IP address to listen on, such as \
                     127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
                )
            })?,
    };
    Ok(Listen {
        addr: SocketAddr::new(ip, port),
    })
}

/// Binds `listen.addr` as the endpoint `name`; clients are taken once the bridge starts
/// the endpoint.
pub fn open(name: &str, listen: &Listen, options: &OpenOptions) -> io::Result<Shape> {
    let listener = TcpListener::bind(listen.addr)?;
    let local = listener.local_addr()?;
    let scope = if local.ip().is_loopback() {
        " (this machine only; tcp-listen://0.0.0.0:PORT serves others)"
    } else {
        ""
    };
    info!("{name}: listening on {local}{scope}");
    Ok(Shape::Messages(Box::new(Listener {
        name: name.to_string(),
        listener,
        max_clients: options.max_clients.max(1),
    })))
}

/// A bound, not yet started listener.
struct Listener {
    name: String,
    listener: TcpListener,
    max_clients: usize,
}

impl Messages for Listener {
    fn start(self: Box<Self>, inbox: Box<dyn Inbox>) -> io::Result<Running> {
        let local = self.listener.local_addr()?;
        let hub = Arc::new(Hub {
            name: self.name.clone(),
            clients: Mutex::new(Vec::new()),
            max_clients: self.max_clients,
            stopped: AtomicBool::new(false),
            unheard: Mutex::new(0),
        });
        let (done_tx, done_rx) = bounded::<()>(0);
        let acceptor = Acceptor {
            hub: Arc::clone(&hub),
            inbox,
            _done: done_tx,
        };
        let listener = self.listener;
        thread::Builder::new()
            .name(format!("accept {}", self.name))
            .spawn(move || acceptor.run(listener))?;
        Ok(Running {
            outbox: Box::new(Broadcast(Arc::clone(&hub))),
            outbox_now: Some(Box::new(Broadcast(Arc::clone(&hub)))),
            guard: Box::new(Stopper {
                hub,
                local,
                done: done_rx,
            }),
        })
    }
}

/// One connected client, as the hub knows it.
struct Client {
    peer: SocketAddr,
    stream: TcpStream,
    queue: Sender<Arc<[u8]>>,
    /// Whether it may still send: false once it shut down its sending side.
    sending: Arc<AtomicBool>,
}

/// The connected clients, shared by the acceptor, their threads and the outbox.
struct Hub {
    name: String,
    clients: Mutex<Vec<Client>>,
    max_clients: usize,
    /// Set when the bridge ends: take no more clients.
    stopped: AtomicBool,
    /// Pieces dropped since the last client left (or since the start).
    unheard: Mutex<u64>,
}

impl Hub {
    fn clients(&self) -> MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a client and closes its socket, which ends its threads.
    fn drop_client(&self, peer: SocketAddr, why: &str) {
        let mut clients = self.clients();
        if let Some(i) = clients.iter().position(|c| c.peer == peer) {
            let client = clients.remove(i);
            let _ = client.stream.shutdown(Shutdown::Both);
            info!("{}: client {peer} {why}", self.name);
        }
    }

    /// Counts `pieces` that reached nobody; logs the first of a run of them.
    fn unheard(&self, pieces: usize) {
        let mut unheard = self.unheard.lock().unwrap_or_else(|e| e.into_inner());
        if *unheard == 0 {
            info!(
                "{}: no client connected; dropping lines until one connects",
                self.name
            );
        }
        *unheard += pieces as u64;
    }
}

/// Accepts clients and starts their threads.
struct Acceptor {
    hub: Arc<Hub>,
    inbox: Box<dyn Inbox>,
    /// Dropped when the thread ends; stopping waits for that.
    _done: Sender<()>,
}

impl Acceptor {
    fn run(self, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.hub.stopped.load(Ordering::Acquire) {
                return;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    warn!("{}: accept failed: {e}", self.hub.name);
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if let Err(e) = self.admit(stream) {
                warn!("{}: could not take a client: {e}", self.hub.name);
            }
        }
    }

    fn admit(&self, mut stream: TcpStream) -> io::Result<()> {
        let peer = stream.peer_addr()?;
        let name = &self.hub.name;
        let mut clients = self.hub.clients();
        if clients.len() >= self.hub.max_clients {
            // A client that stopped sending makes room; the oldest such goes first.
            match clients
                .iter()
                .position(|c| !c.sending.load(Ordering::Acquire))
            {
                Some(i) => {
                    let old = clients.remove(i);
                    let _ = old.stream.shutdown(Shutdown::Both);
                    info!(
                        "{name}: client {} dropped to make room for {peer} (it had stopped sending)",
                        old.peer
                    );
                }
                None => {
                    let n = self.hub.max_clients;
                    info!("{name}: refused {peer}: already serving {n} (see --max-clients)");
                    let refusal = format!("serial-bridge: busy: already serving {n} client(s)\n");
                    let _ = stream.write_all(refusal.as_bytes());
                    let _ = stream.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
        }
        stream.set_nodelay(true)?;
        let (queue_tx, queue_rx) = bounded::<Arc<[u8]>>(CLIENT_QUEUE);
        let sending = Arc::new(AtomicBool::new(true));
        let mut inlet = self.inbox.open(&format!("{name} client {peer}"));
        let mut input = stream.try_clone()?;
        let (hub, flag) = (Arc::clone(&self.hub), Arc::clone(&sending));
        thread::Builder::new()
            .name(format!("read {name} {peer}"))
            .spawn(move || {
                let result = super::pump(&mut input, &mut *inlet);
                // Whatever it sent last goes on, even without its delimiter.
                drop(inlet);
                match result {
                    Ok(()) => {
                        flag.store(false, Ordering::Release);
                        debug!("{}: client {peer} finished sending", hub.name);
                    }
                    Err(e) => hub.drop_client(peer, &format!("left ({e})")),
                }
            })?;
        let output = stream.try_clone()?;
        let hub = Arc::clone(&self.hub);
        thread::Builder::new()
            .name(format!("write {name} {peer}"))
            .spawn(move || write_client(output, queue_rx, &hub, peer))?;
        clients.push(Client {
            peer,
            stream,
            queue: queue_tx,
            sending,
        });
        info!(
            "{name}: client {peer} connected ({} of {})",
            clients.len(),
            self.hub.max_clients
        );
        let mut unheard = self.hub.unheard.lock().unwrap_or_else(|e| e.into_inner());
        if *unheard > 0 {
            info!(
                "{name}: {} lines dropped while no client was connected",
                *unheard
            );
            *unheard = 0;
        }
        Ok(())
    }
}

/// A client's writer thread: its queue to its socket, until either ends.
fn write_client(mut out: TcpStream, queue: Receiver<Arc<[u8]>>, hub: &Hub, peer: SocketAddr) {
    for bytes in queue {
        if let Err(e) = out.write_all(&bytes) {
            hub.drop_client(peer, &format!("left ({e})"));
            return;
        }
    }
}

/// The listening endpoint's way out: every piece to every client, never waiting.
struct Broadcast(Arc<Hub>);

impl Broadcast {
    /// Queues `bytes` for every client; returns whether any client got them.
    fn offer(&self, bytes: &[u8], pieces: usize) -> bool {
        let hub = &self.0;
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let mut stalled = Vec::new();
        let reached = {
            let clients = hub.clients();
            for client in clients.iter() {
                match client.queue.try_send(Arc::clone(&bytes)) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => stalled.push(client.peer),
                }
            }
            !clients.is_empty()
        };
        for peer in stalled {
            warn!("{}: client {peer} is not reading; dropped it", hub.name);
            hub.drop_client(peer, "dropped");
        }
        if !reached {
            hub.unheard(pieces);
        }
        reached
    }
}

impl Outbox for Broadcast {
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        match self.offer(batch.bytes(), batch.pieces()) {
            true => Ok(Dropped::default()),
            false => Ok(Dropped::all(batch)),
        }
    }
}

impl SendNow for Broadcast {
    fn send_now(&mut self, batch: &Batch) -> Taken {
        let reached = self.offer(batch.bytes(), batch.pieces());
        Taken {
            bytes: batch.bytes().len(),
            dropped: match reached {
                true => Dropped::default(),
                false => Dropped::all(batch),
            },
        }
    }
}

/// The running listener's guard: dropping it stops taking clients and closes them.
struct Stopper {
    hub: Arc<Hub>,
    local: SocketAddr,
    /// Disconnected once the accepting thread has ended.
    done: Receiver<()>,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.hub.stopped.store(true, Ordering::Release);
        for client in self.hub.clients().drain(..) {
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
