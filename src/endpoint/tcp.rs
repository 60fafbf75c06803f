//! TCP endpoints: `tcp://HOST:PORT` (also pyserial's `socket://`) connects as a
//! client; `tcp-listen://[ADDR:]PORT` serves line clients.
//!
//! A client endpoint is one stream, like a serial port: a server closing it ends the
//! bridge with exit 1.
//!
//! A listening endpoint takes clients as they come, up to `--max-clients` (a client
//! past that gets a one-line refusal and is closed), and hides them behind one pair
//! of halves:
//!
//! - **From clients.** Each client has a reader thread with its own [`Framer`], so its
//!   lines reach the other side whole, never interleaved with another client's. Each
//!   piece travels alone through one channel, and the read half returns one piece per
//!   read; the endpoint is marked `framed` so the bridge does not frame it again. A
//!   client's partial line goes out when it disconnects, after `--flush-after`, or at
//!   shutdown (through `leftovers`).
//! - **To clients.** The write half copies each batch to every connected client's
//!   bounded queue, drained by that client's writer thread. A client whose queue is
//!   full (it stopped reading) is dropped, with a log line, so it cannot stall the
//!   others or the bridge. Lines that arrive while no client is connected are dropped
//!   (logged at debug).
//!
//! Without an address the listener binds 127.0.0.1: serving other machines must be
//! asked for (`tcp-listen://0.0.0.0:PORT`), since the bridge has no authentication.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::{debug, info, warn};

use super::{Endpoint, OpenOptions};
use crate::framing::{Batch, Framer};

/// Pieces from all clients waiting for the bridge. Small: the bridge reads as fast
/// as it can write, and a full channel holds back clients, not the bridge.
const INBOUND_CAPACITY: usize = 64;

/// Batches waiting to be written to one client. A client this far behind has
/// stopped reading and is dropped.
const CLIENT_QUEUE: usize = 256;

/// Bytes asked of a client per read.
const READ_BUFFER: usize = 16 * 1024;

/// A `tcp-listen://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Where to listen.
    pub addr: SocketAddr,
}

/// Parses `HOST:PORT` of `tcp://HOST:PORT`.
pub fn parse_connect(text: &str, rest: &str) -> Result<String, String> {
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!(
            "{text}: expected tcp://HOST:PORT, e.g. tcp://192.168.1.20:5000"
        ));
    };
    if host.is_empty() {
        return Err(format!("{text}: missing host before ':{port}'"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
    Ok(rest.to_string())
}

/// Parses `[ADDR:]PORT` of `tcp-listen://[ADDR:]PORT`.
pub fn parse_listen(text: &str, rest: &str) -> Result<Listen, String> {
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

/// Connects to `addr` as the endpoint `name`.
pub fn connect(name: String, addr: &str) -> io::Result<Endpoint> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    info!("{name}: connected to {}", stream.peer_addr()?);
    let reader = Reader(stream.try_clone()?);
    let mut endpoint = Endpoint::new(name, Box::new(reader), Box::new(stream.try_clone()?));
    endpoint.writer_now = send_now(&stream)?;
    Ok(endpoint)
}

/// A stream's read half; a reset connection is a close, like EOF.
struct Reader(TcpStream);

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
            other => other,
        }
    }
}

/// A write half that never waits: `send` with `MSG_DONTWAIT`, which leaves the
/// socket itself blocking for the bridge's writer thread.
#[cfg(unix)]
fn send_now(stream: &TcpStream) -> io::Result<Option<Box<dyn Write + Send>>> {
    struct SendNow(TcpStream);
    impl Write for SendNow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            use std::os::fd::AsRawFd;
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            // SAFETY: sends from `buf`, valid for its length, on a socket we own.
            let n =
                unsafe { libc::send(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    Ok(Some(Box::new(SendNow(stream.try_clone()?))))
}

#[cfg(not(unix))]
fn send_now(_: &TcpStream) -> io::Result<Option<Box<dyn Write + Send>>> {
    Ok(None)
}

/// One connected client, as the hub knows it.
struct Client {
    peer: SocketAddr,
    stream: TcpStream,
    queue: Sender<Arc<[u8]>>,
    framer: Arc<Mutex<Framer>>,
}

/// The connected clients, shared by the acceptor, their threads and both halves.
struct Hub {
    name: String,
    clients: Mutex<Vec<Client>>,
    max_clients: usize,
}

impl Hub {
    fn clients(&self) -> MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a client and closes its socket, which ends its threads.
    fn drop_client(&self, peer: SocketAddr, why: &str) {
        let mut clients = self.clients();
        if let Some(i) = clients.iter().position(|c| c.peer == peer) {
            let client = clients.swap_remove(i);
            let _ = client.stream.shutdown(Shutdown::Both);
            info!("{}: client {peer} {why}", self.name);
        }
    }
}

/// Listens at `listen.addr` as the endpoint `name`.
pub fn listen(name: String, listen: &Listen, options: &OpenOptions) -> io::Result<Endpoint> {
    let listener = TcpListener::bind(listen.addr)?;
    let local = listener.local_addr()?;
    let scope = if local.ip().is_loopback() {
        " (this machine only; tcp-listen://0.0.0.0:PORT serves others)"
    } else {
        ""
    };
    info!("{name}: listening on {local}{scope}");
    let hub = Arc::new(Hub {
        name: name.clone(),
        clients: Mutex::new(Vec::new()),
        max_clients: options.max_clients.max(1),
    });
    let (inbound_tx, inbound_rx) = bounded::<Vec<u8>>(INBOUND_CAPACITY);
    let acceptor = Acceptor {
        hub: Arc::clone(&hub),
        inbound: inbound_tx,
        options: options.clone(),
    };
    thread::Builder::new()
        .name(format!("accept {name}"))
        .spawn(move || acceptor.run(listener))?;
    let reader = Inbound {
        rx: inbound_rx.clone(),
        piece: Vec::new(),
        at: 0,
    };
    let writer = Broadcast {
        hub: Arc::clone(&hub),
    };
    let mut endpoint = Endpoint::new(name, Box::new(reader), Box::new(writer));
    endpoint.framed = true;
    endpoint.leftovers = Some(Box::new(move || {
        let mut rest = Batch::default();
        while let Ok(piece) = inbound_rx.try_recv() {
            rest.push(&piece);
        }
        for client in hub.clients().iter() {
            let mut framer = client.framer.lock().unwrap_or_else(|e| e.into_inner());
            framer.take_partial(&mut rest);
        }
        rest
    }));
    Ok(endpoint)
}

/// Accepts clients and starts their threads.
struct Acceptor {
    hub: Arc<Hub>,
    inbound: Sender<Vec<u8>>,
    options: OpenOptions,
}

impl Acceptor {
    fn run(self, listener: TcpListener) {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
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
        let mut clients = self.hub.clients();
        if clients.len() >= self.hub.max_clients {
            let n = self.hub.max_clients;
            info!(
                "{}: refused {peer}: already serving {n} (see --max-clients)",
                self.hub.name
            );
            let refusal = format!("serial-bridge: busy: already serving {n} client(s)\n");
            let _ = stream.write_all(refusal.as_bytes());
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        stream.set_nodelay(true)?;
        let framer = Arc::new(Mutex::new(Framer::new(&self.options.framing)));
        let (queue_tx, queue_rx) = bounded::<Arc<[u8]>>(CLIENT_QUEUE);
        let client_reader = ClientReader {
            hub: Arc::clone(&self.hub),
            peer,
            stream: stream.try_clone()?,
            framer: Arc::clone(&framer),
            inbound: self.inbound.clone(),
            flush_after: self.options.flush_after,
        };
        let name = &self.hub.name;
        thread::Builder::new()
            .name(format!("read {name} {peer}"))
            .spawn(move || client_reader.run())?;
        let mut out = stream.try_clone()?;
        let hub = Arc::clone(&self.hub);
        thread::Builder::new()
            .name(format!("write {name} {peer}"))
            .spawn(move || {
                for bytes in queue_rx {
                    if out.write_all(&bytes).is_err() {
                        hub.drop_client(peer, "left (write failed)");
                        return;
                    }
                }
            })?;
        clients.push(Client {
            peer,
            stream,
            queue: queue_tx,
            framer,
        });
        info!(
            "{name}: client {peer} connected ({} of {})",
            clients.len(),
            self.hub.max_clients
        );
        Ok(())
    }
}

/// One client's reader: frames its lines and sends each piece on, whole.
struct ClientReader {
    hub: Arc<Hub>,
    peer: SocketAddr,
    stream: TcpStream,
    framer: Arc<Mutex<Framer>>,
    inbound: Sender<Vec<u8>>,
    flush_after: Option<Duration>,
}

impl ClientReader {
    fn run(mut self) {
        let mut buf = vec![0; READ_BUFFER];
        loop {
            let waiting = self.lock().pending() > 0;
            let timeout = if waiting { self.flush_after } else { None };
            let _ = self.stream.set_read_timeout(timeout);
            let read = self.stream.read(&mut buf);
            let mut out = Batch::default();
            let end = match read {
                Ok(0) => true,
                Ok(n) => {
                    self.lock().feed(&buf[..n], &mut out);
                    false
                }
                // --flush-after: the partial line has waited long enough.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    self.lock().take_partial(&mut out);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                Err(e) => {
                    debug!("{}: client {}: {e}", self.hub.name, self.peer);
                    true
                }
            };
            if end {
                // Whatever the client sent last goes on, even without its delimiter.
                self.lock().take_partial(&mut out);
            }
            for piece in out.iter() {
                if self.inbound.send(piece.to_vec()).is_err() {
                    return;
                }
            }
            if end {
                self.hub.drop_client(self.peer, "left");
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Framer> {
        self.framer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The listening endpoint's read half: one whole piece per read (a piece longer than
/// the caller's buffer takes several reads, back to back).
struct Inbound {
    rx: Receiver<Vec<u8>>,
    piece: Vec<u8>,
    at: usize,
}

impl Read for Inbound {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            // The acceptor holds a sender for as long as the listener lives.
            self.piece = self.rx.recv().map_err(|_| io::ErrorKind::BrokenPipe)?;
            self.at = 0;
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The listening endpoint's write half: every batch to every client.
struct Broadcast {
    hub: Arc<Hub>,
}

impl Write for Broadcast {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bytes: Arc<[u8]> = Arc::from(buf);
        let mut stalled = Vec::new();
        {
            let clients = self.hub.clients();
            if clients.is_empty() {
                debug!(
                    "{}: no client connected; dropped {} bytes",
                    self.hub.name,
                    buf.len()
                );
            }
            for client in clients.iter() {
                match client.queue.try_send(Arc::clone(&bytes)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => stalled.push(client.peer),
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
        }
        for peer in stalled {
            warn!(
                "{}: client {peer} is not reading; dropped it",
                self.hub.name
            );
            self.hub.drop_client(peer, "dropped");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
