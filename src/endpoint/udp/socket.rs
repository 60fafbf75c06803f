//! The socket both UDP kinds run on: how it receives and sends, and what it counts as
//! lost. `run.rs` starts its reader thread and ways out; `peers.rs` keeps the peers of
//! `udp-listen://`.
//!
//! **In**: the reader waits for a datagram (on Unix in `poll`, with a second
//! descriptor that a stop closes, so an idle socket never wakes up; elsewhere with a
//! read timeout) and hands it to its one inlet as one message. A datagram is never
//! merged with another nor split, but by `--max-line` as any message is.
//!
//! **Out**: each piece is one datagram, without its delimiter; a piece longer than a
//! datagram carries goes in datagrams of the largest size. A datagram the kernel will
//! not send (no buffer, no route, the destination refused) is counted as dropped and
//! logged (at most every [`COMPLAIN_EVERY`]); nothing of the kind ends the bridge.
//! "Port unreachable" comes back later than the datagram it is about, on whichever of
//! the next send or receive comes first: each report counts one datagram dropped, and
//! a send that carried the report is tried again, as it never left.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::warn;

use super::peers::Peers;
use crate::endpoint::contract::{GiveUp, Taken};
use crate::framing::{Batch, Framing};

/// The largest UDP payload over IPv4: 65,535 bytes less the IP and UDP headers.
pub const MAX_DATAGRAM_V4: usize = 65_507;

/// The largest UDP payload over IPv6 (without jumbograms).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// How often, at most, a run of failed sends is logged.
pub const COMPLAIN_EVERY: Duration = Duration::from_secs(10);

/// How long a wait for room to send lasts at a time before it looks for a stop.
#[cfg(unix)]
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Where lines go.
#[derive(Debug)]
pub enum Targets {
    /// The peer the socket is connected to.
    Peer,
    /// One address.
    To(SocketAddr),
    /// The peers heard from recently.
    Heard(Mutex<Peers>),
}

/// An open UDP socket and what the endpoint does with it.
#[derive(Debug)]
pub struct Socket {
    pub(super) name: String,
    sock: UdpSocket,
    targets: Targets,
    /// Stripped from the end of each piece (none with `--raw`).
    delimiter: Option<Vec<u8>>,
    max_datagram: usize,
    pub(super) stopped: AtomicBool,
    /// Closed by a stop, to wake the reader's `poll`.
    #[cfg(unix)]
    pub(super) wake: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
    /// "Unreachable" reports not yet counted as dropped.
    refused: AtomicUsize,
    /// The size of the last piece sent, for the bytes of a refused one.
    last_size: AtomicUsize,
    /// When a failed send was last logged, and how many failed since.
    complaint: Mutex<(Option<Instant>, u64)>,
}

impl Socket {
    /// `sock` as the endpoint `name`, sending to `targets`, framed by `framing`.
    pub fn new(
        name: &str,
        sock: UdpSocket,
        targets: Targets,
        framing: &Framing,
    ) -> io::Result<Socket> {
        #[cfg(unix)]
        sock.set_nonblocking(true)?;
        #[cfg(not(unix))]
        sock.set_read_timeout(Some(Duration::from_millis(250)))?;
        // The connected peer's, looked up once; else the socket's own family's.
        let max_datagram = largest(sock.peer_addr().or_else(|_| sock.local_addr())?);
        Ok(Socket {
            name: name.to_string(),
            sock,
            targets,
            delimiter: match framing {
                Framing::Lines { delimiter, .. } => Some(delimiter.clone()),
                Framing::Raw => None,
            },
            max_datagram,
            stopped: AtomicBool::new(false),
            #[cfg(unix)]
            wake: std::os::unix::net::UnixStream::pair()?,
            refused: AtomicUsize::new(0),
            last_size: AtomicUsize::new(0),
            complaint: Mutex::new((None, 0)),
        })
    }

    /// The next datagram into `buf` (its length and sender), or `None` once stopped.
    /// `idle` is called each time nothing is waiting, before the wait.
    pub(super) fn recv(
        &self,
        buf: &mut [u8],
        idle: &mut dyn FnMut(),
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        let mut first = true;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return Ok(None);
            }
            if !first {
                idle();
                #[cfg(unix)]
                self.wait_for(libc::POLLIN, None)?;
            }
            first = false;
            if self.stopped.load(Ordering::Acquire) {
                return Ok(None);
            }
            match self.sock.recv_from(buf) {
                Ok(got) => return Ok(Some(got)),
                Err(e) if waiting(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Datagrams the kernel dropped at this socket so far, its receive buffer full
    /// (counted modulo 2^32); `None` where the system does not tell.
    pub(super) fn kernel_drops(&self) -> Option<u32> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            const DROPS: usize = libc::SK_MEMINFO_DROPS as usize;
            let mut info = [0u32; DROPS + 1];
            let mut len = size_of_val(&info) as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `info`, which lives over
            // the call, on a socket this struct owns.
            let ok = unsafe {
                libc::getsockopt(
                    self.sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_MEMINFO,
                    info.as_mut_ptr().cast(),
                    &mut len,
                )
            } == 0;
            (ok && len as usize >= size_of_val(&info)).then_some(info[DROPS])
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    }

    /// Waits until the socket is ready for `events` (or has an error to report), a stop
    /// wakes it, or `timeout` passes.
    #[cfg(unix)]
    fn wait_for(&self, events: libc::c_short, timeout: Option<Duration>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let poll = |fd: i32, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut fds = [
            poll(self.sock.as_raw_fd(), events),
            poll(self.wake.1.as_raw_fd(), libc::POLLIN),
        ];
        crate::endpoint::unix::poll(&mut fds, timeout).map(|_| ())
    }

    /// A sender was heard from.
    pub(super) fn heard(&self, from: SocketAddr) {
        if let Targets::Heard(peers) = &self.targets {
            lock(peers).heard(&self.name, from, Instant::now());
        }
    }

    /// Counts an "unreachable" report: one datagram sent earlier was dropped.
    pub(super) fn refusal(&self, error: &io::Error) {
        self.refused.fetch_add(1, Ordering::AcqRel);
        let to = match &self.targets {
            Targets::Peer => self
                .sock
                .peer_addr()
                .map_or("the peer".into(), |a| a.to_string()),
            _ => "a peer".into(),
        };
        self.complain(&format!("{to} did not take a datagram: {}", why(error)));
    }

    /// Logs a failed send, at most every [`COMPLAIN_EVERY`], with the count since.
    fn complain(&self, what: &str) {
        let mut complaint = lock(&self.complaint);
        complaint.1 += 1;
        let now = Instant::now();
        if complaint
            .0
            .is_some_and(|at| now.saturating_duration_since(at) < COMPLAIN_EVERY)
        {
            return;
        }
        let since = match complaint.1 {
            1 => String::new(),
            n => format!(" ({n} failed sends since the last report)"),
        };
        warn!(
            "{}: {what}; such lines are counted as dropped{since}",
            self.name
        );
        *complaint = (Some(now), 0);
    }

    /// Sends one datagram to `to` (`None`: the connected peer). When the socket has no
    /// room: `WouldBlock` if `may_stop`, else waits until it has or `give_up` is set.
    fn send_one(
        &self,
        data: &[u8],
        to: Option<SocketAddr>,
        may_stop: bool,
        give_up: &GiveUp,
    ) -> io::Result<()> {
        let mut reported = false;
        loop {
            let sent = match to {
                Some(addr) => self.sock.send_to(data, addr),
                None => self.sock.send(data),
            };
            match sent {
                Ok(_) => return Ok(()),
                // A report about an earlier datagram: this one did not leave yet.
                Err(e) if unreachable(&e) && !reported => {
                    reported = true;
                    self.refusal(&e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if waiting(&e) && !may_stop => {
                    if give_up.now() || self.stopped.load(Ordering::Acquire) {
                        return Err(e);
                    }
                    #[cfg(unix)]
                    self.wait_for(libc::POLLOUT, Some(WAIT_SLICE))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends the pieces of `batch`. `direct`: stop before a piece that finds no room
    /// (what is left is not taken), else wait for room.
    pub(super) fn deliver(&self, batch: &Batch, direct: bool, give_up: &GiveUp) -> Taken {
        let targets: Vec<Option<SocketAddr>> = match &self.targets {
            Targets::Peer => vec![None],
            Targets::To(addr) => vec![Some(*addr)],
            Targets::Heard(peers) => {
                let mut peers = lock(peers);
                let now = peers.current(&self.name, Instant::now());
                if now.is_empty() {
                    return peers.unheard(&self.name, batch);
                }
                now.into_iter().map(Some).collect()
            }
        };
        let mut taken = Taken::default();
        let mut pieces = 0;
        for piece in batch.iter() {
            let payload = match &self.delimiter {
                Some(delimiter) => piece.strip_suffix(delimiter.as_slice()).unwrap_or(piece),
                None => piece,
            };
            let mut reached = false;
            let mut started = false;
            for to in &targets {
                match self.send_datagrams(payload, *to, direct && !started, give_up) {
                    Ok(()) => reached = true,
                    Err(e) if direct && !started && waiting(&e) => {
                        return self.with_refused(taken, pieces);
                    }
                    Err(e) => {
                        let to = to.map_or("the peer".to_string(), |a| a.to_string());
                        self.complain(&format!("cannot send to {to}: {}", why(&e)));
                    }
                }
                started = true;
            }
            taken.bytes += piece.len();
            pieces += 1;
            if reached {
                // A later "unreachable" is about this one, whole, delimiter included.
                self.last_size.store(piece.len(), Ordering::Relaxed);
            }
            if !reached {
                taken.dropped.pieces += 1;
                taken.dropped.bytes += piece.len();
            }
        }
        self.with_refused(taken, pieces)
    }

    /// `payload` to `to` in datagrams of at most the largest size (an empty payload is
    /// one empty datagram).
    fn send_datagrams(
        &self,
        payload: &[u8],
        to: Option<SocketAddr>,
        may_stop: bool,
        give_up: &GiveUp,
    ) -> io::Result<()> {
        if payload.is_empty() {
            return self.send_one(payload, to, may_stop, give_up);
        }
        let most = to.map_or(self.max_datagram, largest);
        for (i, datagram) in payload.chunks(most).enumerate() {
            self.send_one(datagram, to, may_stop && i == 0, give_up)?;
        }
        Ok(())
    }

    /// Adds the "unreachable" reports not yet counted to what `taken` dropped, as far
    /// as the `pieces` it took go (the rest count with a later batch).
    fn with_refused(&self, mut taken: Taken, pieces: usize) -> Taken {
        let sent = pieces.saturating_sub(taken.dropped.pieces);
        let room = taken.bytes.saturating_sub(taken.dropped.bytes);
        let mut count = 0;
        let _ = self
            .refused
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                count = n.min(sent);
                Some(n - count)
            });
        if count > 0 {
            let bytes = count.saturating_mul(self.last_size.load(Ordering::Relaxed));
            taken.dropped.pieces += count;
            taken.dropped.bytes += bytes.min(room);
        }
        taken
    }
}

/// The largest datagram `to` can take: IPv4's for an IPv4 address, even one reached
/// through an IPv6 socket (`[::ffff:a.b.c.d]`), else IPv6's.
fn largest(to: SocketAddr) -> usize {
    match to {
        SocketAddr::V6(addr) if addr.ip().to_ipv4_mapped().is_none() => MAX_DATAGRAM_V6,
        _ => MAX_DATAGRAM_V4,
    }
}

/// Whether `error` means "no room now".
fn waiting(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether `error` reports a datagram that did not arrive (ICMP port, host or network
/// unreachable; Windows reports it as a reset).
pub(super) fn unreachable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Why, for the log.
fn why(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            "port unreachable (nothing listens there)".into()
        }
        _ => crate::error::lowercase_first(&error.to_string()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
