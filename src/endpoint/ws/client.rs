//! `ws://HOST:PORT[/PATH]`: a WebSocket client, one connection with a reader and a
//! writer thread ([`super::frames`]). The server closing is the endpoint closing.

use std::any::Any;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};
use log::info;
use tungstenite::protocol::frame::coding::CloseCode;

use super::frames::Conn;
use super::http;
use super::rules::Role;
use super::settings::Connect;
use crate::endpoint::contract::{
    Direct, Dropped, Endpoint, GiveUp, Inbox, Kind, Opening, Outbox, Running, Start, Stop, Taken,
};
use crate::endpoint::listen::{Earlier, Parcel, Shipment, wait_drained};
use crate::endpoint::tcp::connect_wire;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Batch;

/// Batches waiting for a `ws://` connection's writer: a few reads' worth.
const SEND_QUEUE: usize = 16;

impl Kind for Connect {
    fn name(&self) -> String {
        Connect::name(self)
    }

    /// A plain connection that the server hangs up on in its handshake may have reached
    /// a TLS port: say so.
    fn why(&self, error: &io::Error) -> String {
        match self.tls {
            None => crate::endpoint::tls::explain::plain_at_tls_port(error, "wss://"),
            Some(_) => crate::error::describe(error),
        }
    }

    /// Connects and does the WebSocket handshake.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let name = opening.name;
        let mut stream = connect_wire(name, &self.addr, self.tls.as_ref(), opening.interrupt())?;
        http::handshake(&mut stream, &self.addr, &self.path, opening.interrupt())?;
        let over = if stream.is_tls() { " over TLS" } else { "" };
        info!("{name}: connected to {}{over}", stream.peer_addr()?);
        let conn = Conn::new(
            Role::Client,
            name.to_string(),
            &opening.defaults.framing,
            self.keepalive,
            &stream,
        )?;
        Ok(Endpoint::new(name, Client { stream, conn }))
    }

    /// A TLS failure that waiting will not mend ends even `--reconnect` at start.
    fn lasting(&self, error: &io::Error) -> bool {
        self.tls.is_some() && crate::endpoint::tls::explain::lasting(error)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A connected `ws://` endpoint, not yet started.
struct Client {
    stream: Wire,
    conn: Conn,
}

impl Start for Client {
    fn start(self: Box<Self>, _: &str, inbox: Box<dyn Inbox>, _: GiveUp) -> io::Result<Running> {
        let conn = Arc::new(self.conn);
        let (queue_tx, queue_rx) = bounded::<Parcel>(SEND_QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let input = self.stream.try_clone()?;
        let reading = Arc::clone(&conn);
        let name = reading.peer().to_string();
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let mut inlet = inbox.open(&name);
                let result = reading.read(input, &mut *inlet);
                match result {
                    // The server closed: dropping the inlet and the inbox says so.
                    Ok(()) => drop(inlet),
                    Err(e) => inlet.fail(e),
                }
                reading.hang_up();
            })?;
        let writing = Arc::clone(&conn);
        let output = self.stream;
        let (done_tx, done_rx) = bounded::<()>(0);
        thread::Builder::new()
            .name(format!("write {}", conn.peer()))
            .spawn(move || {
                let _done = done_tx;
                let _ = writing.write(output, Earlier::default(), queue_rx);
            })?;
        Ok(Running {
            outbox: Box::new(Queue(queue_tx.clone(), Arc::clone(&pending))),
            direct: Some(Box::new(Queue(queue_tx, pending))),
            stop: Box::new(Closer {
                conn,
                done: done_rx,
            }),
        })
    }
}

/// A `ws://` connection's way out: its writer's queue, and how much it holds.
struct Queue(Sender<Parcel>, Arc<AtomicUsize>);

impl Outbox for Queue {
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        let parcel = Parcel::new(Shipment::new(batch.clone(), None), &self.1);
        self.0.send(parcel).map_err(|_| io::ErrorKind::BrokenPipe)?;
        Ok(Dropped::default())
    }

    /// Waits until the connection's writer has sent what it was given.
    fn finish(&mut self, give_up: &GiveUp) {
        wait_drained(|| self.1.load(Ordering::Acquire) > 0, give_up);
    }
}

impl Direct for Queue {
    fn try_send(&mut self, batch: &Batch) -> Taken {
        let parcel = Parcel::new(Shipment::new(batch.clone(), None), &self.1);
        let bytes = match self.0.try_send(parcel) {
            Ok(()) => batch.bytes().len(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => 0,
        };
        Taken {
            bytes,
            dropped: Dropped::default(),
        }
    }
}

/// Stops a `ws://` connection: a close frame, then the socket.
struct Closer {
    conn: Arc<Conn>,
    /// Disconnected once the writer has ended.
    done: crossbeam_channel::Receiver<()>,
}

impl Stop for Closer {
    fn stop(self: Box<Self>, deadline: Instant) {
        self.conn.close(CloseCode::Away, "the bridge is stopping");
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = self.done.recv_timeout(wait.min(CLOSE_WAIT));
        self.conn.hang_up();
    }
}

/// How long closing waits for the close frame to go out (the bridge's own grace for
/// writing out lines is over by then).
const CLOSE_WAIT: Duration = Duration::from_millis(200);
