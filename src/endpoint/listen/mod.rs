//! Listening endpoints: a server whose clients come and go while the bridge runs.
//! `tcp-listen://[ADDR:]PORT` (and over TLS `tls-listen://`) serves line clients
//! ([`Lines`]); `ws-listen://` and `rfc2217-listen://` serve theirs with the same
//! machinery and their own [`Protocol`] (`protocol.rs`; line clients' is `lines.rs`).
//! Where it listens, and with what certificate, is `address.rs`; how it binds, accepts
//! and greets connections and starts a client's threads, `listener.rs`; the clients it
//! holds, `hub.rs`; what it keeps for a page that opens later, `history.rs`. A TLS
//! client's handshake is part of its greeting.
//!
//! Each connection gets a thread of its own at once, so a slow or silent peer never
//! holds up the accepting thread. The protocol greets it there (a WebSocket handshake;
//! an HTTP page or a refusal is answered and closed), then it becomes a client: a
//! reader thread that hands what it sends to an inlet of its own (see
//! [`Inbox`](crate::endpoint::contract::Inbox)), so the bridge frames each client's
//! lines separately and they reach the other side whole, never interleaved with
//! another client's; and a writer thread that drains the client's bounded queue.
//!
//! Every piece for the endpoint goes to every client (`Broadcast`). A client with
//! nothing waiting for its writer is written to straight from the thread that hands
//! the batch over, where its protocol has a [`Voice`] for it (line clients; WebSocket
//! clients other than the console page; never over TLS), so a device that hands over
//! one line at a time wakes no writer thread per client and line; what its socket
//! cannot take now goes to its writer, as wire bytes, and everything after queues
//! behind it (`straight.rs`). A client whose
//! queue is full (it stopped reading) is dropped, with a log line, so it cannot stall
//! the others or the bridge. Pieces that arrive while no client is connected reach
//! nobody: the first such drop is logged, and the total when a client arrives; the
//! summary counts them as dropped.
//!
//! Up to `--max-clients` clients at once; one more is refused in the protocol's way. A
//! client that stops sending (`nc -N`) is still a reader: it gets lines until it closes
//! or a write to it fails. If a newcomer needs its place, it makes room.
//!
//! Without an address the listener binds 127.0.0.1: serving other machines must be
//! asked for (`tcp-listen://0.0.0.0:PORT`).

mod address;
mod history;
mod hub;
mod lines;
mod listener;
mod protocol;
mod straight;

pub use address::{Listen, parse, parse_tls, parse_tls_lines};
pub use history::{Earlier, HISTORY_BYTES, History};
pub use hub::{Parcel, Shipment, wait_drained};
pub use lines::{DEFAULT_TCP_CLIENTS, Lines};
pub use listener::bind;
pub use protocol::Protocol;
pub use straight::Voice;
