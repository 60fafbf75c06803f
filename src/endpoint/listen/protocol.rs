//! What a listener asks of the protocol it serves ([`Protocol`]): greet each
//! connection, then read from and write to each client, on the connection's own
//! threads; and, where it says so, keep a history for later clients or write to a
//! client straight. TCP line clients (`lines.rs`), WebSocket clients and RFC 2217
//! clients are served this way, by the one listener of `listener.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::history::{Earlier, History};
use super::hub::Parcel;
use super::straight::Voice;
use crate::endpoint::contract::{Inbox, Inlet};
use crate::endpoint::tls::wire::Wire;

/// What a listener does with each connection, on the connection's own threads.
pub trait Protocol: Send + Sync + 'static {
    /// What a client's reader and writer threads share.
    type Conn: Send + Sync + 'static;

    /// What is across the bridge, told as the listener starts: the serial port (for a
    /// protocol that serves it: RFC 2217) and its name (for a page that names it).
    fn linked(&mut self, across: &dyn Inbox) {
        let _ = across;
    }

    /// What of the lines sent to clients to keep for a client that comes later and
    /// asks for them (the console page); none unless the protocol says.
    fn history(&self) -> History {
        History::default()
    }

    /// How the thread handing a batch over may write it to this client's socket itself
    /// when nothing waits for the client's writer (over TCP, not TLS; see [`Voice`]):
    /// for protocols whose writer can share the socket so. None unless the protocol
    /// says.
    fn voice(&self, conn: &Arc<Self::Conn>) -> Option<Arc<dyn Voice>> {
        let _ = conn;
        None
    }

    /// The listener is bound at `local`: say what a user needs to know of it.
    fn bound(&self, name: &str, local: SocketAddr) {
        let _ = (name, local);
    }

    /// Greets a new connection: a handshake, or an answer (a page, a refusal) after
    /// which it is closed (`Ok(None)`). `room()` asks for a client's place, once the
    /// connection is known to want one; false means there is none.
    fn greet(
        &self,
        stream: &mut Wire,
        peer: SocketAddr,
        room: &mut dyn FnMut() -> bool,
    ) -> io::Result<Option<Self::Conn>>;

    /// The client's reader: what it sends, into `inlet`, until it stops sending (`Ok`)
    /// or fails.
    fn read(&self, conn: &Self::Conn, stream: Wire, inlet: &mut dyn Inlet) -> io::Result<()>;

    /// The client's writer: what it asked for of the history (`earlier`, taken as it
    /// joined; empty without [`Protocol::history`]), then every batch of `queue` out,
    /// until the queue ends (`Ok`) or a write fails.
    fn write(
        &self,
        conn: &Self::Conn,
        stream: Wire,
        earlier: Earlier,
        queue: Receiver<Parcel>,
    ) -> io::Result<()>;
}
