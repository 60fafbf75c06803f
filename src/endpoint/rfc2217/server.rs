//! `rfc2217-listen://`'s clients, on the listener's threads (see [`crate::endpoint::listen`]):
//! greeting with the option negotiation, a reader that splits what a client sends into
//! data for the port and commands it answers at once, and a writer that sends the
//! port's bytes with 0xFF doubled, holding back while the client asked to suspend.
//!
//! Both write to the client's socket, each a whole message under one lock, so an answer
//! never lands inside data. The reader holds no lock while it waits for the socket.
//! It wakes only for what the client sends, and once a second while the client watches
//! modem lines or receive errors the port has (a pty has neither: then never).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Receiver;
use log::{debug, info};

use super::comport::Com;
use super::session::{Ask, Clients, Port, Session};
use super::telnet::{self, BINARY, COM_PORT, Command, Decoder, Piece, SGA};
use super::{Cidr, Rfc2217Listen};
use crate::endpoint::contract::{Inbox, Inlet};
use crate::endpoint::control::ControlLink;
use crate::endpoint::listen::{Earlier, Parcel, Protocol};
use crate::endpoint::stream::READ_BUFFER;
use crate::endpoint::tls::wire::Wire;

/// How often modem lines are read while a client watches them: ser2net's pace.
const MODEM_POLL: Duration = Duration::from_secs(1);

/// The options a server agrees to, both ways.
const AGREED: &[u8] = &[BINARY, SGA, COM_PORT];

/// The server: what its clients share.
pub struct Server {
    shared: Arc<Shared>,
    max_clients: usize,
    allow: Vec<Cidr>,
}

/// What every client of one server shares.
struct Shared {
    name: String,
    /// The settings as clients see them. Lock order: this, then `clients`.
    port: Mutex<Port>,
    clients: Mutex<Clients>,
    /// The serial port across the bridge.
    link: Mutex<ControlLink>,
    tickets: AtomicU64,
}

impl Shared {
    fn port(&self) -> MutexGuard<'_, Port> {
        self.port.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clients(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn link(&self) -> ControlLink {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Server {
    /// The server `name` for `kind`, with at most `max_clients` clients.
    pub fn new(name: &str, kind: &Rfc2217Listen, max_clients: usize) -> Server {
        Server {
            shared: Arc::new(Shared {
                name: name.to_string(),
                port: Mutex::new(Port::new(name, kind.reset)),
                clients: Mutex::default(),
                link: Mutex::default(),
                tickets: AtomicU64::new(0),
            }),
            max_clients,
            allow: kind.allow.clone(),
        }
    }

    fn refuse(&self, stream: &Wire, peer: SocketAddr, why: &str) -> io::Result<Option<Conn>> {
        info!("{}: refused {peer}: {why}", self.shared.name);
        let _ = stream.shutdown(Shutdown::Both);
        Ok(None)
    }
}

/// One client.
pub struct Conn {
    ticket: u64,
    peer: String,
    shared: Arc<Shared>,
    /// The socket's writing side: whole messages, one at a time.
    out: Mutex<Wire>,
    state: Mutex<ConnState>,
    /// Signalled when the client resumes, or its reader ends.
    resumed: Condvar,
    /// Whether it left.
    left: AtomicBool,
}

/// A client's protocol state.
struct ConnState {
    options: telnet::Options,
    session: Session,
    /// Whether it speaks RFC 2217: it said WILL COM-PORT-OPTION, or sent a command
    /// (pyserial sends no WILL if our DO reached it first).
    speaks: bool,
    /// Its reader ended: its writer waits for nothing.
    ended: bool,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `bytes` whole.
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(bytes)
    }

    /// The client speaks RFC 2217 (now, or already): the first time, it is told the
    /// modem lines.
    fn speaks(&self, state: &mut ConnState, replies: &mut Vec<u8>) {
        if std::mem::replace(&mut state.speaks, true) {
            return;
        }
        let lines = self.shared.link().get().and_then(|c| c.modem().ok());
        if let Some(notice) = state.session.modem_notice(lines, true) {
            replies.extend(notice.encode(true));
        }
    }

    /// Handles one command, adding the answer to `replies`.
    fn command(&self, command: Command, replies: &mut Vec<u8>) {
        match command {
            Command::Negotiate(verb, option) => {
                let mut state = self.state();
                if let Some(answer) = state.options.received(verb, option) {
                    replies.extend_from_slice(&answer);
                }
                if state.options.theirs(COM_PORT) {
                    self.speaks(&mut state, replies);
                }
            }
            Command::Sub(sub) => {
                let Some((com, false)) = Com::parse(&sub) else {
                    debug!(
                        "{}: client {}: ignored a subnegotiation: {}",
                        self.shared.name,
                        self.peer,
                        crate::escape::escape(&sub)
                    );
                    return;
                };
                let control = self.shared.link().get();
                let in_control = self.shared.clients().controls(self.ticket);
                let mut port = self.shared.port();
                let mut state = self.state();
                self.speaks(&mut state, replies);
                let suspended = state.session.suspended();
                let answer = state.session.answer(
                    com,
                    Ask {
                        port: &mut port,
                        control: control.as_ref(),
                        in_control,
                        peer: &self.peer,
                    },
                );
                if let Some(answer) = answer {
                    replies.extend(answer.encode(true));
                }
                if suspended && !state.session.suspended() {
                    self.resumed.notify_all();
                }
            }
        }
    }

    /// Whether to look at the port now and then: the client watches modem lines or
    /// receive errors, and the port has them.
    fn watching(&self) -> bool {
        let state = self.state();
        let Some(control) = self.shared.link().get().filter(|_| state.speaks) else {
            return false;
        };
        (state.session.watches_modem() && control.modem().is_ok())
            || (state.session.watches_lines() && control.line_errors().is_ok())
    }

    /// The notices of changes the client watches: modem lines, receive errors.
    fn changes(&self) -> Vec<u8> {
        let mut notices = Vec::new();
        let Some(control) = self.shared.link().get() else {
            return notices;
        };
        let mut state = self.state();
        if let Ok(lines) = control.modem()
            && let Some(notice) = state.session.modem_notice(Some(lines), false)
        {
            notices.extend(notice.encode(true));
        }
        if let Some(notice) = state.session.line_notice(control.line_errors().ok()) {
            notices.extend(notice.encode(true));
        }
        notices
    }

    /// Waits while the client asked us to suspend sending.
    fn wait_resumed(&self) {
        let mut state = self.state();
        while state.session.suspended() && !state.ended {
            state = self.resumed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Its reader ended: nothing will resume the writer.
    fn end(&self) {
        self.state().ended = true;
        self.resumed.notify_all();
    }
}

impl Conn {
    /// The client is gone (its reader ended, before the listener frees its place, so a
    /// client that comes next is alone): control passes on, and the last one gives the
    /// port its own settings back, under the settings lock, so no newcomer's setting
    /// can come between.
    fn leave(&self) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        let (name, peer) = (&self.shared.name, &self.peer);
        let mut port = self.shared.port();
        let (next, last) = self.shared.clients().leave(self.ticket);
        if let Some(next) = next {
            debug!("{name}: client {peer} left; the next client (#{next}) controls the port");
        }
        if last
            && port.release()
            && let Some(control) = self.shared.link().get()
        {
            control.restore();
            info!("{name}: the last client left; the port has its own settings back");
        }
    }
}

impl Drop for Conn {
    /// A client whose reader never ran (refused after its greeting) leaves here.
    fn drop(&mut self) {
        self.leave();
    }
}

impl Protocol for Server {
    type Conn = Conn;

    fn linked(&mut self, across: &dyn Inbox) {
        *self.shared.link.lock().unwrap_or_else(|e| e.into_inner()) = across.control();
    }

    fn greet(
        &self,
        stream: &mut Wire,
        peer: SocketAddr,
        room: &mut dyn FnMut() -> bool,
    ) -> io::Result<Option<Conn>> {
        if !self.allow.is_empty() && !self.allow.iter().any(|range| range.contains(peer.ip())) {
            return self.refuse(stream, peer, "not in allow=");
        }
        if !room() {
            let n = self.max_clients;
            return self.refuse(
                stream,
                peer,
                &format!("already serving {n} (see --max-clients)"),
            );
        }
        let ticket = self.shared.tickets.fetch_add(1, Ordering::Relaxed);
        let name = &self.shared.name;
        match self.shared.clients().join(ticket) {
            true => info!("{name}: client {peer} controls the port"),
            false => info!("{name}: client {peer} watches; the first client controls the port"),
        }
        let mut options = telnet::Options::new(AGREED);
        let mut hello = options.ask(BINARY);
        hello.extend(options.ask(SGA));
        hello.extend(options.ask_peer(COM_PORT));
        let conn = Conn {
            ticket,
            peer: peer.to_string(),
            shared: Arc::clone(&self.shared),
            out: Mutex::new(stream.try_clone()?),
            state: Mutex::new(ConnState {
                options,
                session: Session::default(),
                speaks: false,
                ended: false,
            }),
            resumed: Condvar::new(),
            left: AtomicBool::new(false),
        };
        conn.send(&hello)?;
        Ok(Some(conn))
    }

    fn read(&self, conn: &Conn, mut stream: Wire, inlet: &mut dyn Inlet) -> io::Result<()> {
        let result = read_client(conn, &mut stream, inlet);
        conn.end();
        conn.leave();
        result
    }

    fn write(&self, conn: &Conn, _: Wire, _: Earlier, queue: Receiver<Parcel>) -> io::Result<()> {
        let mut escaped = Vec::new();
        for batch in queue {
            conn.wait_resumed();
            escaped.clear();
            telnet::escape(batch.bytes(), &mut escaped);
            conn.send(&escaped)?;
            batch.written();
        }
        Ok(())
    }
}

/// The client's reader: data into `inlet`, commands answered, until it leaves.
fn read_client(conn: &Conn, stream: &mut Wire, inlet: &mut dyn Inlet) -> io::Result<()> {
    let mut decoder = Decoder::default();
    let (mut buf, mut data, mut replies) = (vec![0; READ_BUFFER], Vec::new(), Vec::new());
    let mut watching = false;
    loop {
        let n = match stream.read(&mut buf) {
            // A telnet client that stops sending has left: a remote port has no
            // half-closed state, and the port is free for the next client.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed the connection",
                ));
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let notices = conn.changes();
                if !notices.is_empty() {
                    conn.send(&notices)?;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (mut fed, mut commands) = (true, false);
        decoder
            .decode(&buf[..n], |piece| match piece {
                Piece::Data(bytes) => data.extend_from_slice(bytes),
                Piece::Command(command) => {
                    // Data before a command reaches the port before the command acts.
                    if !data.is_empty() {
                        fed &= inlet.feed(&data);
                        data.clear();
                    }
                    conn.command(command, &mut replies);
                    commands = true;
                }
            })
            .map_err(|_| {
                let most = telnet::MAX_SUBNEGOTIATION;
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("sent a telnet subnegotiation over {most} bytes"),
                )
            })?;
        if !data.is_empty() {
            fed &= inlet.feed(&data);
            data.clear();
        }
        if !replies.is_empty() {
            conn.send(&replies)?;
            replies.clear();
        }
        if !fed {
            return Ok(());
        }
        if commands && conn.watching() != watching {
            watching = !watching;
            stream.set_read_timeout(watching.then_some(MODEM_POLL))?;
        }
    }
}
