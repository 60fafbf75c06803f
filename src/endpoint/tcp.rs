//! `tcp://HOST:PORT` (also pyserial's `socket://`): a TCP client, a byte stream like a
//! serial port. A server closing the connection ends the bridge with exit 1 (or, with
//! `--reconnect`, a reconnect).
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
use super::stream::Stream;

/// How long a connect may take before it fails with a clear message. A reachable
/// server answers within a second; the kernel's own limit is over two minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting connect checks whether the bridge is stopping.
const CONNECT_POLL: Duration = Duration::from_millis(50);

/// A `tcp://HOST:PORT` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// `HOST:PORT`.
    pub addr: String,
}

/// Parses `HOST:PORT` of `tcp://HOST:PORT`.
pub fn parse(text: &str, rest: &str) -> Result<Tcp, String> {
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
    Ok(Tcp {
        addr: rest.to_string(),
    })
}

impl Kind for Tcp {
    fn name(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Connects: a byte stream, with a write half that never waits on Unix.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let stream = connect_stream(&self.addr, opening.interrupt())?;
        stream.set_nodelay(true)?;
        info!("{}: connected to {}", opening.name, stream.peer_addr()?);
        let halves = Stream::new(
            Box::new(Reader(stream.try_clone()?)),
            Box::new(stream.try_clone()?),
        );
        #[cfg(unix)]
        let halves = halves.with_direct(super::unix::WriteNow::socket(stream.into()));
        Ok(Endpoint::new(opening.name, halves))
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
