//! The listener: binds its port, accepts connections and greets each on a thread of
//! its own (with a TLS handshake first for a TLS listener), at most [`MAX_GREETINGS`]
//! at once; a connection its [`Protocol`] takes becomes a client, with a reader
//! thread, a writer thread and a place in the hub.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use log::{debug, info, warn};

use super::address::Listen;
use super::hub::{Broadcast, Client, Hub, Parcel, State, Stopper};
use super::protocol::Protocol;
use super::straight::Straight;
use crate::endpoint::contract::{Endpoint, GiveUp, Inbox, Running, Start};
use crate::endpoint::tls::config;
use crate::endpoint::tls::wire::Wire;

/// Batches waiting to be written to one client. A client this far behind has
/// stopped reading and is dropped.
const CLIENT_QUEUE: usize = 256;

/// How long a TLS client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections being greeted at once, at most (each has a thread). One more closes the
/// one that has waited longest: a client sends its head at once, so connections that
/// send nothing, or a byte, and wait cannot lock clients out however fast they are
/// renewed, and threads cannot pile up.
const MAX_GREETINGS: usize = 64;

/// Binds `listen.addr` for `protocol`, as the endpoint `name`; clients are taken once
/// the bridge starts it.
pub fn bind<P: Protocol>(
    name: &str,
    listen: &Listen,
    max_clients: usize,
    protocol: P,
) -> io::Result<Endpoint> {
    let tls = match &listen.tls {
        Some(settings) => Some(config::server(settings)?),
        None => None,
    };
    let listener = TcpListener::bind(listen.addr)?;
    let local = listener.local_addr()?;
    let scheme = name.split("://").next().unwrap_or("tcp-listen");
    let scope = match local.ip().is_loopback() {
        true => format!(" (this machine only; {scheme}://0.0.0.0:PORT serves others)"),
        false => String::new(),
    };
    info!("{name}: listening on {local}{scope}");
    protocol.bound(name, local);
    let listener = Listener {
        listener,
        max_clients: max_clients.max(1),
        protocol,
        tls,
    };
    Ok(Endpoint::new(name, listener))
}

/// A bound, not yet started listener.
struct Listener<P> {
    listener: TcpListener,
    max_clients: usize,
    protocol: P,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl<P: Protocol> Start for Listener<P> {
    fn start(self: Box<Self>, name: &str, inbox: Box<dyn Inbox>, _: GiveUp) -> io::Result<Running> {
        let mut this = *self;
        this.protocol.linked(&*inbox);
        let local = this.listener.local_addr()?;
        let hub = Arc::new(Hub {
            name: name.to_string(),
            late: Arc::default(),
            state: Mutex::new(State {
                history: this.protocol.history(),
                ..State::default()
            }),
            max_clients: this.max_clients,
            stopped: AtomicBool::new(false),
        });
        let (done_tx, done_rx) = bounded::<()>(0);
        let server = Arc::new(Server {
            hub: Arc::clone(&hub),
            inbox: Mutex::new(inbox),
            protocol: this.protocol,
            greetings: Mutex::new(VecDeque::new()),
            tickets: AtomicU64::new(0),
            tls: this.tls,
        });
        let listener = this.listener;
        thread::Builder::new()
            .name(format!("accept {name}"))
            .spawn(move || {
                let _done = done_tx;
                server.accept(listener);
            })?;
        Ok(Running {
            outbox: Box::new(Broadcast(Arc::clone(&hub))),
            direct: Some(Box::new(Broadcast(Arc::clone(&hub)))),
            stop: Box::new(Stopper {
                hub,
                local,
                done: done_rx,
            }),
        })
    }
}

/// Accepts connections and runs each on threads of its own.
struct Server<P> {
    hub: Arc<Hub>,
    inbox: Mutex<Box<dyn Inbox>>,
    protocol: P,
    /// Connections being greeted now, oldest first, by ticket.
    greetings: Mutex<VecDeque<(u64, TcpStream)>>,
    /// The next ticket.
    tickets: AtomicU64,
    /// The TLS configuration of a TLS listener.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl<P: Protocol> Server<P> {
    fn accept(self: Arc<Self>, listener: TcpListener) {
        // Whether the last accept failed: a run of failures is logged once.
        let mut failing = false;
        for stream in listener.incoming() {
            if self.hub.stopped.load(Ordering::Acquire) {
                return;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    let why = crate::error::os_message(&e).to_lowercase();
                    match failing {
                        false => warn!(
                            "{}: cannot take clients: {why} (trying again every 100 ms)",
                            self.hub.name
                        ),
                        true => debug!("{}: accept failed: {why}", self.hub.name),
                    }
                    failing = true;
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if failing {
                info!("{}: taking clients again", self.hub.name);
                failing = false;
            }
            let ticket = match self.admit(&stream) {
                Ok(ticket) => ticket,
                Err(e) => {
                    debug!("{}: could not greet a connection: {e}", self.hub.name);
                    continue;
                }
            };
            let server = Arc::clone(&self);
            let spawned = thread::Builder::new()
                .name(format!("greet {}", self.hub.name))
                .spawn(move || {
                    let name = server.hub.name.clone();
                    let served = Arc::clone(&server).serve(stream, ticket);
                    server.greeted(ticket);
                    if let Err(e) = served {
                        debug!("{name}: a connection ended early: {e}");
                    }
                });
            if let Err(e) = spawned {
                self.greeted(ticket);
                warn!("{}: could not take a client: {e}", self.hub.name);
            }
        }
    }

    /// A connection to greet gets a ticket; if [`MAX_GREETINGS`] are being greeted,
    /// the one waiting longest is closed to make room.
    fn admit(&self, stream: &TcpStream) -> io::Result<u64> {
        let handle = stream.try_clone()?;
        let mut greetings = self.greetings.lock().unwrap_or_else(|e| e.into_inner());
        if greetings.len() >= MAX_GREETINGS
            && let Some((_, oldest)) = greetings.pop_front()
        {
            let _ = oldest.shutdown(Shutdown::Both);
            debug!(
                "{}: {MAX_GREETINGS} connections were being greeted; closed the one waiting \
                 longest",
                self.hub.name
            );
        }
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        greetings.push_back((ticket, handle));
        Ok(ticket)
    }

    /// The connection with `ticket` is greeted (or gone): it is not closed to make room.
    fn greeted(&self, ticket: u64) {
        let mut greetings = self.greetings.lock().unwrap_or_else(|e| e.into_inner());
        greetings.retain(|(t, _)| *t != ticket);
    }

    /// Greets a connection and, if it becomes a client, starts its threads.
    fn serve(self: Arc<Self>, stream: TcpStream, ticket: u64) -> io::Result<()> {
        let peer = stream.peer_addr()?;
        let mut stream = match &self.tls {
            // The handshake is part of the greeting: a connection that stalls in it is
            // closed to make room as one that sends no head is.
            Some(tls) => {
                let stopped = || self.hub.stopped.load(Ordering::Acquire);
                let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
                match Wire::server(stream, Arc::clone(tls), &stopped, deadline) {
                    Ok(wire) => wire,
                    Err(e) => {
                        self.greeted(ticket);
                        info!("{}: refused {peer}: {e}", self.hub.name);
                        return Ok(());
                    }
                }
            }
            None => Wire::plain(stream),
        };
        let mut room = None;
        let greeted = self.protocol.greet(&mut stream, peer, &mut || {
            *room.get_or_insert_with(|| self.hub.reserve(peer))
        });
        self.greeted(ticket);
        let room = room.unwrap_or(false);
        let mut state = self.hub.state();
        state.reserved -= usize::from(room);
        let Some(conn) = greeted? else {
            return Ok(());
        };
        if !room || self.hub.stopped.load(Ordering::Acquire) {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        stream.set_nodelay(true)?;
        let conn = Arc::new(conn);
        let voice = match self.tls {
            None => self.protocol.voice(&conn),
            Some(_) => None,
        };
        let name = &self.hub.name;
        let (queue_tx, queue_rx) = bounded::<Parcel>(CLIENT_QUEUE);
        let sending = Arc::new(AtomicBool::new(true));
        let mut inlet = self.inbox().open_client(&format!("{name} client {peer}"));
        let (input, output) = (stream.try_clone()?, stream.try_clone()?);
        let (server, shared, flag) = (Arc::clone(&self), Arc::clone(&conn), Arc::clone(&sending));
        thread::Builder::new()
            .name(format!("read {name} {peer}"))
            .spawn(move || {
                let result = server.protocol.read(&shared, input, &mut *inlet);
                // Whatever it sent last goes on, even without its delimiter.
                drop(inlet);
                match result {
                    Ok(()) => {
                        flag.store(false, Ordering::Release);
                        debug!("{}: client {peer} finished sending", server.hub.name);
                    }
                    Err(e) => server.hub.drop_client(peer, &left(&e)),
                }
            })?;
        // Taken with the lock held until the client joins the list: each piece sent
        // meanwhile is in one or the other.
        let earlier = state.history.earlier();
        let server = Arc::clone(&self);
        thread::Builder::new()
            .name(format!("write {name} {peer}"))
            .spawn(move || {
                // Its writer ends when the client is gone, or closed the connection.
                match server.protocol.write(&conn, output, earlier, queue_rx) {
                    Ok(()) => server.hub.drop_client(peer, "left"),
                    Err(e) => server.hub.drop_client(peer, &left(&e)),
                }
            })?;
        let straight = match voice {
            Some(voice) => Straight::new(stream.tcp(), voice)?,
            None => None,
        };
        state.clients.push(Client {
            peer,
            stream: stream.tcp().try_clone()?,
            straight,
            queue: queue_tx,
            sending,
            pending: Arc::default(),
        });
        let count = state.clients.len();
        info!(
            "{name}: client {peer} connected ({count} of {})",
            self.hub.max_clients
        );
        if state.unheard > 0 {
            info!(
                "{name}: {} dropped while no client was connected",
                crate::words::count(state.unheard, "line")
            );
            state.unheard = 0;
        }
        Ok(())
    }

    fn inbox(&self) -> MutexGuard<'_, Box<dyn Inbox>> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a client left, for its log line: `left (connection reset by peer)`.
fn left(error: &io::Error) -> String {
    format!("left ({})", crate::error::os_message(error).to_lowercase())
}
