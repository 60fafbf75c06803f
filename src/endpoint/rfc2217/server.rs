//! `rfc2217-listen://`'s clients, on the listener's threads (see [`crate::endpoint::listen`]):
//! greeting with the option negotiation, a reader that splits what a client sends into
//! data for the port and commands it answers at once, and a writer that sends the
//! port's bytes with 0xFF doubled, holding back while the client asked to suspend.
//!
//! Both write to the client's socket, each a whole message under one lock, so an answer
//! never lands inside data. The reader holds no lock while it waits for the socket.
//! When nothing is queued for the writer, the thread handing the port's bytes over
//! writes them itself, escaped the same way, under the same lock, tried and never
//! waited for (see `impl Voice for Conn` and `output.rs`); if the socket takes only
//! part, the rest goes to the writer and nothing else is sent before it.
//! It wakes only for what the client sends, and once a second while the client watches
//! modem lines or receive errors the port has (a pty has neither: then never).

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Receiver;
use log::{debug, info};

use super::comport::Com;
use super::output::{Output, wire};
use super::port::{Clients, Port};
use super::session::{Ask, Session};
use super::telnet::{self, BINARY, COM_PORT, Command, Decoder, Piece, SGA};
use super::{Cidr, Rfc2217Listen};
use crate::endpoint::contract::{Inbox, Inlet};
use crate::endpoint::control::ControlLink;
use crate::endpoint::listen::{Earlier, Parcel, Protocol, Voice};
use crate::endpoint::stream::READ_BUFFER;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Batch;

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
    out: Output,
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

    /// Sends `bytes` whole (see [`Output::send`]).
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.out.send(bytes)
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
            out: Output::new(stream.try_clone()?),
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

    /// Straight writes for every client (see `impl Voice for Conn`).
    fn voice(&self, conn: &Arc<Conn>) -> Option<Arc<dyn Voice>> {
        Some(Arc::clone(conn) as Arc<dyn Voice>)
    }

    fn write(&self, conn: &Conn, _: Wire, _: Earlier, queue: Receiver<Parcel>) -> io::Result<()> {
        let result = write_client(conn, queue);
        conn.out.writer_ended();
        result
    }
}

/// The client's writer: each parcel escaped, after the client resumes if it asked to
/// suspend; the rest of a straight write as it is, at once (it is part of a write
/// already begun, and the reader may be waiting to answer after it).
fn write_client(conn: &Conn, queue: Receiver<Parcel>) -> io::Result<()> {
    for parcel in queue {
        if parcel.framed() {
            conn.out.send_rest(parcel.bytes())?;
        } else {
            conn.wait_resumed();
            conn.send(wire(&parcel).bytes())?;
        }
        parcel.written();
    }
    Ok(())
}

/// Straight writes: see [`Output::try_speak`]; none while the client asked to suspend
/// (the writer holds them back until it resumes).
impl Voice for Conn {
    fn speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch> {
        // Tried too, and let go before the socket's is tried: the thread handing the
        // batch over never waits for a client's threads, and no thread holds both.
        if self.state.try_lock().ok()?.session.suspended() {
            return None;
        }
        self.out.try_speak(batch, send)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Instant;

    /// A client served over a real loopback socket: its connection, a handle on the
    /// server's end (where a straight write goes), and the client's end.
    fn served() -> (Arc<Conn>, TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_end, peer) = listener.accept().unwrap();
        let kind = super::super::parse_listen("rfc2217-listen://127.0.0.1:0", "127.0.0.1:0")
            .expect("a listen address");
        let server = Server::new("test", &kind, 1);
        let mut wire = Wire::plain(server_end.try_clone().unwrap());
        let conn = server
            .greet(&mut wire, peer, &mut || true)
            .unwrap()
            .unwrap();
        (Arc::new(conn), server_end, client)
    }

    /// Reads `client` until its data is `data` and `subs` subnegotiations came; the
    /// data and the subnegotiations, as a telnet client decodes them.
    fn decoded(client: &mut TcpStream, data: usize, subs: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (mut decoder, mut got, mut commands) = (Decoder::default(), Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0; 4096];
        while (got.len() < data || commands.len() < subs) && Instant::now() < deadline {
            let n = match client.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            };
            decoder
                .decode(&buf[..n], |piece| match piece {
                    Piece::Data(bytes) => got.extend_from_slice(bytes),
                    Piece::Command(Command::Sub(sub)) => commands.push(sub),
                    Piece::Command(Command::Negotiate(..)) => {}
                })
                .unwrap();
        }
        (got, commands)
    }

    const ANSWER: &[u8] = &[IAC, 250, COM_PORT, 101, 0, 0, 0x25, 0x80, IAC, 240];
    const IAC: u8 = 0xFF;

    #[test]
    fn a_straight_write_is_the_writers_bytes_and_a_cut_holds_answers_back() {
        let (conn, mut server_end, mut client) = served();
        let batch = Batch::of(&[b"a\xff", b"\xffb"]);
        assert_eq!(wire(&batch).bytes(), b"a\xff\xff\xff\xffb");
        // The socket takes two bytes: the cut falls inside the first doubled 0xFF.
        let rest = conn
            .speak(&batch, &mut |bytes| {
                server_end.write_all(&bytes[..2]).unwrap();
                2
            })
            .expect("a rest");
        assert_eq!(rest.bytes(), b"\xff\xff\xffb");
        assert_eq!(rest.pieces(), 2, "both pieces are not all out");
        // While the rest is owed nothing goes straight, and an answer waits for it.
        let nothing = conn.speak(&batch, &mut |_| panic!("a straight write while cut"));
        assert!(nothing.is_none());
        let answering = {
            let conn = Arc::clone(&conn);
            thread::spawn(move || conn.send(ANSWER))
        };
        // A window for a wrong answer to go out in: it would land inside the 0xFF.
        thread::sleep(Duration::from_millis(200));
        assert!(!answering.is_finished(), "the answer went before the rest");
        conn.out.send_rest(rest.bytes()).unwrap();
        answering.join().unwrap().unwrap();
        let (data, subs) = decoded(&mut client, 4, 1);
        assert_eq!(data, b"a\xff\xffb");
        assert_eq!(subs, vec![ANSWER[2..8].to_vec()]);
        // All out: straight writes go again, whole.
        let rest = conn.speak(&batch, &mut |bytes| {
            server_end.write_all(bytes).unwrap();
            bytes.len()
        });
        assert!(rest.is_some_and(|rest| rest.is_empty()));
        assert_eq!(decoded(&mut client, 4, 0).0, b"a\xff\xffb");
    }

    #[test]
    fn nothing_goes_straight_while_the_client_suspended_or_after_its_writer_ended() {
        let (conn, _, _client) = served();
        let batch = Batch::of(&[b"x"]);
        let mut replies = Vec::new();
        conn.command(Command::Sub(vec![COM_PORT, 8]), &mut replies);
        assert!(conn.state().session.suspended());
        assert!(
            conn.speak(&batch, &mut |_| panic!("sent while suspended"))
                .is_none()
        );
        conn.command(Command::Sub(vec![COM_PORT, 9]), &mut replies);
        assert!(conn.speak(&batch, &mut |bytes| bytes.len()).is_some());
        // A writer that ended writes no rest: nothing is cut after it, nothing waits.
        conn.out.writer_ended();
        assert!(
            conn.speak(&batch, &mut |_| panic!("sent after the writer"))
                .is_none()
        );
        conn.send(b"still answers").unwrap();
    }
}
