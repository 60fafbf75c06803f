//! [`Wire`]: a TCP connection, plain or TLS, with the handles of a `TcpStream`, so that
//! every network endpoint runs the same code over either.
//!
//! A rustls connection is one state machine that cannot be split between a reader and
//! a writer thread, so the handles of a TLS wire share it behind a lock, and nobody
//! holds that lock while waiting for the socket:
//!
//! - The reader blocks in `read` on the socket with the lock free, then takes the lock
//!   only to hand rustls the ciphertext, decrypt and take the plaintext (microseconds).
//!   A writer blocked on a peer that does not read never holds up the reader, and the
//!   reader, idle in `read`, never holds up the writer: no head-of-line blocking, and no
//!   wake-ups while idle.
//! - The writer takes the lock to encrypt, queues the records in order, then writes
//!   them to the socket with the lock free. One thread at a time writes to the socket
//!   (`flushing`), taking records in the order rustls made them, so records made by the
//!   reader (an alert, a key update's answer) go out in order too: whoever is writing
//!   takes them along, or the reader writes them itself when nobody is.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::Connection;

use super::config::Asked;
use super::explain::{self, Stage};

/// Ciphertext asked of the socket per read: one full TLS record and its header.
const READ_CHUNK: usize = 16 * 1024 + 512;

/// How often a handshake checks its deadline and whether the bridge is stopping.
const POLL: Duration = Duration::from_millis(50);

/// A TCP connection, plain or TLS. Clones share the connection.
pub struct Wire {
    tcp: TcpStream,
    tls: Option<Arc<Tls>>,
    /// This handle's buffer for ciphertext read from the socket.
    scratch: Vec<u8>,
}

/// What the handles of a TLS wire share.
struct Tls {
    state: Mutex<State>,
    /// Signalled when a writer is done writing records to the socket.
    written: Condvar,
    /// Whether the server asked for a client certificate this end did not have.
    asked: Option<Arc<Asked>>,
}

struct State {
    conn: Connection,
    /// Ciphertext read from the socket that rustls has not taken yet.
    carry: Vec<u8>,
    /// Records made and not yet written, in order.
    out: Vec<u8>,
    /// Someone is writing records to the socket with the lock free.
    flushing: bool,
    /// The socket has closed (read gave 0).
    eof: bool,
    /// Threads waiting for `flushing` to end (so that nobody is woken for nothing).
    waiting: usize,
}

impl Wire {
    /// A plain TCP connection.
    pub fn plain(tcp: TcpStream) -> Wire {
        Wire {
            tcp,
            tls: None,
            scratch: Vec::new(),
        }
    }

    /// A TLS client connection on `tcp`, after its handshake, which ends by
    /// `deadline` or when `interrupted` says so.
    pub fn client(
        tcp: TcpStream,
        config: super::config::Client,
        name: rustls::pki_types::ServerName<'static>,
        interrupted: &dyn Fn() -> bool,
        deadline: Instant,
    ) -> io::Result<Wire> {
        let shown = name.to_str().into_owned();
        let conn = rustls::ClientConnection::new(config.config, name)
            .map_err(|e| explain::error(e, &shown, None, Stage::Handshake))?;
        let asked = Some(config.asked);
        Wire::handshake(tcp, conn.into(), asked, &shown, interrupted, deadline)
    }

    /// A TLS server connection on `tcp`, after its handshake.
    pub fn server(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        interrupted: &dyn Fn() -> bool,
        deadline: Instant,
    ) -> io::Result<Wire> {
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        Wire::handshake(tcp, conn.into(), None, &peer, interrupted, deadline)
    }

    fn handshake(
        tcp: TcpStream,
        mut conn: Connection,
        asked: Option<Arc<Asked>>,
        peer: &str,
        interrupted: &dyn Fn() -> bool,
        deadline: Instant,
    ) -> io::Result<Wire> {
        let explain = |e| explain::error(e, peer, asked.as_deref(), Stage::Handshake);
        tcp.set_read_timeout(Some(POLL))?;
        let mut socket = &tcp;
        while conn.is_handshaking() {
            // Checked on every pass, not only when a read times out: a peer that sends a
            // byte now and then must not stretch the handshake past its deadline.
            if interrupted() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if Instant::now() >= deadline {
                return Err(explain::no_handshake(peer));
            }
            while conn.wants_write() {
                conn.write_tls(&mut socket)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            match conn.read_tls(&mut socket) {
                Ok(0) => return Err(explain::closed_in_handshake(peer, asked.as_deref())),
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // Tell the peer why, as TLS asks; it may be gone already.
                        let _ = conn.write_tls(&mut socket);
                        return Err(explain(e));
                    }
                }
                // The deadline and a stop are checked at the top of the loop.
                Err(e) if timed_out(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(explain::closed_in_handshake(peer, asked.as_deref()));
                }
                Err(e) => return Err(e),
            }
        }
        while conn.wants_write() {
            conn.write_tls(&mut socket)?;
        }
        tcp.set_read_timeout(None)?;
        let tls = Tls {
            state: Mutex::new(State {
                conn,
                carry: Vec::new(),
                out: Vec::new(),
                flushing: false,
                eof: false,
                waiting: 0,
            }),
            written: Condvar::new(),
            asked,
        };
        Ok(Wire {
            tcp,
            tls: Some(Arc::new(tls)),
            scratch: Vec::new(),
        })
    }

    /// Whether the server asked for a client certificate.
    pub fn certificate_asked(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|tls| tls.asked.as_ref())
            .is_some_and(|asked| asked.asked())
    }

    /// Waits up to `wait` for the peer's verdict after a handshake in which it asked for
    /// a client certificate (TLS 1.3 servers refuse a missing or unwanted one only after
    /// the handshake): its refusal is the error. Anything the peer sends meanwhile stays
    /// for the reader, and ends the wait.
    pub fn await_verdict(&mut self, wait: Duration) -> io::Result<()> {
        if !self.certificate_asked() {
            return Ok(());
        }
        // The first records after the handshake are the verdict: a refusal, or the
        // session tickets a server sends once it has taken this end.
        self.tcp.set_read_timeout(Some(wait))?;
        let result = match self.fill(Stage::Handshake) {
            Err(e) if !timed_out(&e) => Err(e),
            _ => Ok(()),
        };
        self.tcp.set_read_timeout(None)?;
        result
    }

    /// Reads once from the socket into rustls: whether plaintext or an end is waiting
    /// for the reader now.
    fn fill(&mut self, stage: Stage) -> io::Result<bool> {
        let Some(tls) = self.tls.clone() else {
            return Ok(true);
        };
        if self.scratch.is_empty() {
            self.scratch = vec![0; READ_CHUNK];
        }
        let n = match (&self.tcp).read(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e),
        };
        let mut state = tls.lock();
        state.eof |= n == 0;
        let taken = state.take(&self.scratch[..n]);
        let ready = state.conn.process_new_packets();
        let reply = state.conn.wants_write();
        drop(state);
        if reply {
            // An alert or an answer the peer is owed: out now, unless a writer is
            // writing, which takes it along.
            let _ = tls.flush(&self.tcp, false);
        }
        taken?;
        match ready {
            Ok(io) => Ok(io.plaintext_bytes_to_read() > 0 || io.peer_has_closed() || n == 0),
            Err(e) => Err(explain::error(e, &self.peer(), tls.asked.as_deref(), stage)),
        }
    }

    fn peer(&self) -> String {
        self.tcp
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Another handle of the same connection.
    pub fn try_clone(&self) -> io::Result<Wire> {
        Ok(Wire {
            tcp: self.tcp.try_clone()?,
            tls: self.tls.clone(),
            scratch: Vec::new(),
        })
    }

    /// Shuts the connection down: `Write` (or `Both`) on a TLS wire sends its
    /// close_notify first, if the writer is not in the middle of a record.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let (Some(tls), Shutdown::Write) = (&self.tls, how) {
            tls.lock().conn.send_close_notify();
            let _ = tls.flush(&self.tcp, false);
        }
        self.tcp.shutdown(how)
    }

    /// The socket underneath, for its options and addresses.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp.set_nodelay(on)
    }

    /// Sets the socket's read timeout (a read through TLS times out as one would).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    /// Whether it is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

impl Tls {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes every record made so far to `tcp`, in order. If another thread is
    /// writing, it takes them along: with `wait` this waits for it, else returns.
    fn flush(&self, tcp: &TcpStream, wait: bool) -> io::Result<()> {
        let mut state = self.lock();
        loop {
            state.seal()?;
            if state.out.is_empty() {
                return Ok(());
            }
            if state.flushing {
                if !wait {
                    return Ok(());
                }
                state.waiting += 1;
                state = self.written.wait(state).unwrap_or_else(|e| e.into_inner());
                state.waiting -= 1;
                continue;
            }
            state.flushing = true;
            let records = std::mem::take(&mut state.out);
            drop(state);
            let (sent, result) = write_some(tcp, &records);
            state = self.lock();
            state.flushing = false;
            if sent < records.len() {
                // Not all out (a timeout, a signal): the rest goes first next time.
                let later = std::mem::take(&mut state.out);
                state.out = records[sent..].to_vec();
                state.out.extend_from_slice(&later);
            }
            if state.waiting > 0 {
                self.written.notify_all();
            }
            result?;
        }
    }
}

impl State {
    /// Hands rustls the ciphertext carried over and `fresh`, as much as it takes now,
    /// processing each part (the caller asks for the outcome).
    fn take(&mut self, fresh: &[u8]) -> io::Result<()> {
        self.carry.extend_from_slice(fresh);
        while !self.carry.is_empty() {
            let mut rest = &self.carry[..];
            let n = match self.conn.read_tls(&mut rest) {
                Ok(n) => n,
                // Its plaintext buffer is full: the reader takes that first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e),
            };
            self.carry.drain(..n);
            if n == 0 || self.conn.process_new_packets().is_err() {
                break;
            }
        }
        if self.eof && self.carry.is_empty() {
            self.conn.read_tls(&mut io::empty())?;
        }
        Ok(())
    }

    /// Moves the records rustls made into `out`.
    fn seal(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.out)?;
        }
        Ok(())
    }
}

/// Whether a read or write gave up at its timeout rather than failed.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes `data` to `tcp` until done or an error: how much went, and the error.
fn write_some(mut tcp: &TcpStream, data: &[u8]) -> (usize, io::Result<()>) {
    let mut sent = 0;
    while sent < data.len() {
        match tcp.write(&data[sent..]) {
            Ok(0) => return (sent, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (sent, Err(e)),
        }
    }
    (sent, Ok(()))
}

impl Read for Wire {
    /// Plaintext: what rustls holds, else a read of the socket with no lock held.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.clone() else {
            return (&self.tcp).read(buf);
        };
        loop {
            {
                let mut state = tls.lock();
                match state.conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Closed without close_notify: as a TCP close is taken.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if !state.carry.is_empty() {
                    // Records read earlier while the plaintext buffer was full.
                    let before = state.carry.len();
                    state.take(&[])?;
                    if let Err(e) = state.conn.process_new_packets() {
                        let asked = tls.asked.as_deref();
                        return Err(explain::error(e, &self.peer(), asked, Stage::Running));
                    }
                    if state.carry.len() < before {
                        continue;
                    }
                }
                if state.eof {
                    // Closed in the middle of a record.
                    return Ok(0);
                }
            }
            self.fill(Stage::Running)?;
        }
    }
}

impl Write for Wire {
    /// Encrypts what rustls will buffer of `data` and writes the records out; a write
    /// that times out after rustls took the data still counts it as written (its
    /// records go first next time).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.clone() else {
            return (&self.tcp).write(data);
        };
        // What an earlier write left first: if that cannot go, nothing new is taken.
        tls.flush(&self.tcp, true)?;
        let n = tls.lock().conn.writer().write(data)?;
        match tls.flush(&self.tcp, true) {
            Err(e) if !timed_out(&e) => Err(e),
            _ => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.tls {
            Some(tls) => tls.flush(&self.tcp, true),
            None => Ok(()),
        }
    }
}
