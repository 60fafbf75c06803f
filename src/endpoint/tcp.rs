//! `tcp://HOST:PORT` (also pyserial's `socket://`): a TCP client, a byte stream like a
//! serial port; `tls://HOST:PORT[,settings]` is the same over TLS. A server closing the
//! connection ends the bridge with exit 1 (or, with `--reconnect`, a reconnect).
//!
//! Connecting can hang (a server whose backlog is full, a host that drops packets, a
//! slow name lookup), so it runs on a thread of its own with a deadline of
//! [`CONNECT_TIMEOUT`], while the caller checks every `CONNECT_POLL` whether the user
//! stopped the bridge. If so the caller returns at once; the connecting thread holds
//! nothing but the attempt, and closes whatever it gets.

use std::any::Any;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, bounded};
use log::info;

use super::contract::{Endpoint, Kind, Opening};
use super::settings::address_and_settings;
use super::stream::Stream;
use super::tls::config;
use super::tls::settings::{CLIENT_KEYS, REPEATABLE, Settings, Side, flags};
use super::tls::wire::Wire;

/// How long a connect may take before it fails with a clear message. A reachable
/// server answers within a second; the kernel's own limit is over two minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting connect checks whether the bridge is stopping.
const CONNECT_POLL: Duration = Duration::from_millis(50);

/// A `tcp://HOST:PORT` or `tls://HOST:PORT` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// `HOST:PORT`.
    pub addr: String,
    /// TLS settings, for `tls://`.
    pub tls: Option<Settings>,
}

/// Parses `HOST:PORT` of `tcp://HOST:PORT`.
pub fn parse(text: &str, rest: &str) -> Result<Tcp, String> {
    host_port(text, rest, "tcp")?;
    Ok(Tcp {
        addr: rest.to_string(),
        tls: None,
    })
}

/// Parses `HOST:PORT[,settings]` of `tls://HOST:PORT[,settings]`.
pub fn parse_tls(text: &str, rest: &str) -> Result<Tcp, String> {
    let rest = flags(rest);
    let mut tls = Settings::new(Side::Client);
    let addr = address_and_settings(text, &rest, CLIENT_KEYS, REPEATABLE, |key, value| {
        tls.take(key, value)
    })?;
    host_port(text, addr, "tls")?;
    tls.check(text)?;
    Ok(Tcp {
        addr: addr.to_string(),
        tls: Some(tls),
    })
}

/// Checks `HOST:PORT`; `scheme` is for the example in the message.
fn host_port(text: &str, addr: &str, scheme: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "{text}: expected {scheme}://HOST:PORT, e.g. {scheme}://192.168.1.20:5000"
        ));
    };
    if host.is_empty() {
        return Err(format!("{text}: missing host before ':{port}'"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
    Ok(())
}

impl Kind for Tcp {
    fn name(&self) -> String {
        match self.tls {
            None => format!("tcp://{}", self.addr),
            Some(_) => format!("tls://{}", self.addr),
        }
    }

    /// Connects: a byte stream, with a write half that never waits on Unix (plain TCP).
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let Some(tls) = &self.tls else {
            let stream = connect_stream(&self.addr, opening.interrupt())?;
            stream.set_nodelay(true)?;
            info!("{}: connected to {}", opening.name, stream.peer_addr()?);
            let halves = Stream::new(
                Box::new(Reader(stream.try_clone()?)),
                Box::new(stream.try_clone()?),
            );
            #[cfg(unix)]
            let halves = halves.with_direct(super::unix::WriteNow::socket(stream.into()));
            return Ok(Endpoint::new(opening.name, halves));
        };
        let mut wire = connect_wire(opening.name, &self.addr, Some(tls), opening.interrupt())?;
        // A TLS 1.3 server refuses a missing client certificate after the handshake:
        // wait for that here, so it is a clear start-up error.
        wire.await_verdict(VERDICT_WAIT)?;
        info!(
            "{}: connected to {} over TLS",
            opening.name,
            wire.peer_addr()?
        );
        let halves = Stream::new(
            Box::new(Reader(wire.try_clone()?)),
            Box::new(wire.try_clone()?),
        )
        .with_guard(Goodbye(wire));
        Ok(Endpoint::new(opening.name, halves))
    }

    /// A TLS failure that waiting will not mend ends even `--reconnect` at start.
    fn lasting(&self, error: &io::Error) -> bool {
        self.tls.is_some() && crate::endpoint::tls::explain::lasting(error)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Resolves `addr` and connects to the first address that answers, within
/// [`CONNECT_TIMEOUT`], giving up early (`Interrupted`) once `interrupted` says so.
pub fn connect_stream(addr: &str, interrupted: &dyn Fn() -> bool) -> io::Result<TcpStream> {
    let (tx, rx) = bounded(1);
    let target = addr.to_string();
    thread::Builder::new()
        .name(format!("connect {addr}"))
        .spawn(move || {
            let deadline = Instant::now() + CONNECT_TIMEOUT;
            let _ = tx.send(try_addresses(&target, deadline));
        })?;
    loop {
        match rx.recv_timeout(CONNECT_POLL) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) if interrupted() => {
                return Err(io::ErrorKind::Interrupted.into());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the connecting thread ended"));
            }
        }
    }
}

/// Tries each address of `target` in turn until `deadline`.
fn try_addresses(target: &str, deadline: Instant) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = target.to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    if Instant::now() >= deadline {
        let secs = CONNECT_TIMEOUT.as_secs();
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {secs} s"),
        ));
    }
    Err(last)
}

/// How long a TLS client that was asked for a certificate it did not have waits for
/// the server's verdict before it starts.
const VERDICT_WAIT: Duration = Duration::from_secs(1);

/// Connects to `addr` (`HOST:PORT`), and with `tls` does the TLS handshake, all within
/// [`CONNECT_TIMEOUT`]; `name` is the endpoint's, for the log. Each endpoint says it is
/// connected once its own handshake is done.
pub fn connect_wire(
    name: &str,
    addr: &str,
    tls: Option<&Settings>,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<Wire> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let stream = connect_stream(addr, interrupted)?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Wire::plain(stream));
    };
    if tls.insecure {
        config::warn_insecure(name);
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let server = config::server_name(tls, host)?;
    Wire::client(stream, config::client(tls)?, server, interrupted, deadline)
}

/// Says goodbye (TLS close_notify) when the endpoint stops, so the peer knows the end
/// is an end and not a cut.
struct Goodbye(Wire);

impl Drop for Goodbye {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }
}

/// A stream's read half; a reset connection is a close, like EOF.
struct Reader<R>(R);

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
            other => other,
        }
    }
}
