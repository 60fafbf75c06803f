//! `tcp-listen://` and `tls-listen://`: the listener with the [`Lines`] protocol, one
//! client at a time unless `--max-clients` says. A line client's bytes go to the
//! bridge as it sends them and the bridge's go to it as they are, so over TCP a batch
//! can be written to it straight ([`AsIs`]); a client too many gets a one-line
//! refusal.

use std::any::Any;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use log::info;

use super::address::Listen;
use super::history::Earlier;
use super::hub::Parcel;
use super::listener::bind;
use super::protocol::Protocol;
use super::straight::{AsIs, Voice};
use crate::endpoint::contract::{Endpoint, Inlet, Kind, Opening, Place};
use crate::endpoint::stream::pump;
use crate::endpoint::tls::wire::Wire;

/// Clients a `tcp-listen://` endpoint serves at once unless `--max-clients` says.
pub const DEFAULT_TCP_CLIENTS: usize = 1;

impl Kind for Listen {
    fn name(&self) -> String {
        match self.tls {
            None => format!("tcp-listen://{}", self.addr),
            Some(_) => format!("tls-listen://{}", self.addr),
        }
    }

    /// Binds the port; clients are taken once the bridge starts the endpoint.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let max = opening.defaults.max_clients.unwrap_or(DEFAULT_TCP_CLIENTS);
        let lines = Lines {
            name: opening.name.to_string(),
            max_clients: max,
        };
        bind(opening.name, self, max, lines)
    }

    fn place(&self) -> Place {
        self.place()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// TCP line clients: bytes in, bytes out, a one-line refusal when full.
pub struct Lines {
    /// The endpoint's name, for messages.
    pub name: String,
    /// The most clients at once.
    pub max_clients: usize,
}

impl Protocol for Lines {
    type Conn = ();

    fn voice(&self, _: &Arc<()>) -> Option<Arc<dyn Voice>> {
        Some(Arc::new(AsIs))
    }

    fn greet(
        &self,
        stream: &mut Wire,
        peer: SocketAddr,
        room: &mut dyn FnMut() -> bool,
    ) -> io::Result<Option<()>> {
        if room() {
            return Ok(Some(()));
        }
        let n = self.max_clients;
        info!(
            "{}: refused {peer}: already serving {n} (see --max-clients)",
            self.name
        );
        let refusal = format!("serial-bridge: busy: already serving {n} client(s)\n");
        let _ = stream.write_all(refusal.as_bytes());
        let _ = stream.shutdown(Shutdown::Both);
        Ok(None)
    }

    fn read(&self, _: &(), mut stream: Wire, inlet: &mut dyn Inlet) -> io::Result<()> {
        pump(&mut stream, inlet)
    }

    fn write(
        &self,
        _: &(),
        mut stream: Wire,
        _: Earlier,
        queue: Receiver<Parcel>,
    ) -> io::Result<()> {
        for batch in queue {
            stream.write_all(batch.bytes())?;
            batch.written();
        }
        if stream.is_tls() {
            // The end of the lines for it: a TLS goodbye.
            let _ = stream.shutdown(Shutdown::Write);
        }
        Ok(())
    }
}
