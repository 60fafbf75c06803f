//! The socket both UDP kinds run on: its reader thread, its way out, its peers.
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
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use log::{Level, debug, info, log, warn};

use crate::endpoint::contract::{
    Direct, Dropped, GiveUp, Inbox, Inlet, Outbox, Running, Start, Stop, Taken,
};
use crate::framing::{Batch, Framing};
use crate::words::count;

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

/// The peers of `udp-listen://` heard from recently: at most `max`, each until it has
/// been silent for `timeout`.
#[derive(Debug)]
pub struct Peers {
    /// Oldest heard first.
    list: Vec<(SocketAddr, Instant)>,
    max: usize,
    timeout: Duration,
    /// Lines dropped since the last peer went, for the log.
    unheard: u64,
    /// Whether more peers were heard from than the list holds.
    crowded: bool,
}

impl Peers {
    /// No peer yet.
    pub fn new(max: usize, timeout: Duration) -> Peers {
        Peers {
            list: Vec::new(),
            max: max.max(1),
            timeout,
            unheard: 0,
            crowded: false,
        }
    }

    /// `peer` sent a datagram at `now`.
    fn heard(&mut self, name: &str, peer: SocketAddr, now: Instant) {
        if let Some(at) = self.list.iter().position(|(p, _)| *p == peer) {
            self.list.remove(at);
            self.list.push((peer, now));
            return;
        }
        self.current(name, now);
        if self.list.len() >= self.max {
            let (oldest, _) = self.list.remove(0);
            if !self.crowded {
                info!(
                    "{name}: more than {} peers: the one heard from least recently gets no \
                     more lines ({oldest} now, to make room for {peer}; --max-clients sets \
                     the number); peers coming and going are logged at debug level from now",
                    self.max
                );
            }
            self.crowded = true;
            debug!("{name}: no more lines to {oldest}, to make room for {peer}");
        }
        self.list.push((peer, now));
        let dropped = std::mem::take(&mut self.unheard);
        let meanwhile = match dropped {
            0 => String::new(),
            n => format!(
                "; {} dropped while no peer was heard from",
                count(n, "line")
            ),
        };
        log!(
            self.level(),
            "{name}: heard from {peer}; lines go to it{meanwhile}"
        );
    }

    /// Peers come and go at info level, until there are more than the list holds.
    fn level(&self) -> Level {
        match self.crowded {
            true => Level::Debug,
            false => Level::Info,
        }
    }

    /// The peers heard from within the timeout; forgets the others.
    fn current(&mut self, name: &str, now: Instant) -> Vec<SocketAddr> {
        let (timeout, level) = (self.timeout, self.level());
        self.list.retain(|(peer, at)| {
            let alive = now.saturating_duration_since(*at) < timeout;
            if !alive {
                log!(
                    level,
                    "{name}: no more lines to {peer}, silent for {}s",
                    timeout.as_secs()
                );
            }
            alive
        });
        self.list.iter().map(|(peer, _)| *peer).collect()
    }
}

/// An open UDP socket and what the endpoint does with it.
#[derive(Debug)]
pub struct Socket {
    name: String,
    sock: UdpSocket,
    targets: Targets,
    /// Stripped from the end of each piece (none with `--raw`).
    delimiter: Option<Vec<u8>>,
    max_datagram: usize,
    stopped: AtomicBool,
    /// Closed by a stop, to wake the reader's `poll`.
    #[cfg(unix)]
    wake: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
    /// "Unreachable" reports not yet counted as dropped.
    refused: AtomicUsize,
    /// The size of the last datagram sent, for the bytes of a refused one.
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
        let max_datagram = match sock.local_addr()? {
            SocketAddr::V4(_) => MAX_DATAGRAM_V4,
            SocketAddr::V6(_) => MAX_DATAGRAM_V6,
        };
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
    fn recv(
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
    fn kernel_drops(&self) -> Option<u32> {
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
    fn heard(&self, from: SocketAddr) {
        if let Targets::Heard(peers) = &self.targets {
            lock(peers).heard(&self.name, from, Instant::now());
        }
    }

    /// Counts an "unreachable" report: one datagram sent earlier was dropped.
    fn refusal(&self, error: &io::Error) {
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
                Ok(_) => {
                    self.last_size.store(data.len(), Ordering::Relaxed);
                    return Ok(());
                }
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
    fn deliver(&self, batch: &Batch, direct: bool, give_up: &GiveUp) -> Taken {
        let targets: Vec<Option<SocketAddr>> = match &self.targets {
            Targets::Peer => vec![None],
            Targets::To(addr) => vec![Some(*addr)],
            Targets::Heard(peers) => {
                let mut peers = lock(peers);
                let now = peers.current(&self.name, Instant::now());
                if now.is_empty() {
                    return self.unheard(&mut peers, batch);
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
        for (i, datagram) in payload.chunks(self.max_datagram).enumerate() {
            self.send_one(datagram, to, may_stop && i == 0, give_up)?;
        }
        Ok(())
    }

    /// Counts a batch sent when no peer was heard from; logs the first of a run.
    fn unheard(&self, peers: &mut Peers, batch: &Batch) -> Taken {
        if peers.unheard == 0 {
            info!(
                "{}: no peer heard from in the last {}s; dropping lines until one sends",
                self.name,
                peers.timeout.as_secs()
            );
        }
        peers.unheard += batch.pieces() as u64;
        Taken {
            bytes: batch.bytes().len(),
            dropped: Dropped::all(batch),
        }
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

/// Whether `error` means "no room now".
fn waiting(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether `error` reports a datagram that did not arrive (ICMP port, host or network
/// unreachable; Windows reports it as a reset).
fn unreachable(error: &io::Error) -> bool {
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

impl Start for Arc<Socket> {
    fn start(
        self: Box<Self>,
        name: &str,
        inbox: Box<dyn Inbox>,
        give_up: GiveUp,
    ) -> io::Result<Running> {
        let socket = *self;
        let mut inlet = inbox.open(name);
        // The reader's inlet is the socket's only source.
        drop(inbox);
        let (done_tx, done_rx) = bounded::<()>(0);
        let reader = Arc::clone(&socket);
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let _done = done_tx;
                if let Err(e) = read(&reader, &mut *inlet) {
                    inlet.fail(e);
                }
            })?;
        let out = Out {
            socket: Arc::clone(&socket),
            give_up,
        };
        Ok(Running {
            outbox: Box::new(out.clone()),
            direct: match cfg!(unix) {
                true => Some(Box::new(out)),
                false => None,
            },
            stop: Box::new(Stopper {
                socket,
                done: done_rx,
            }),
        })
    }
}

/// The reader: each datagram into `inlet` as one message, until a stop or a bridge that
/// takes no more (`Ok`), or a receive that fails for good.
fn read(socket: &Socket, inlet: &mut dyn Inlet) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM_V6 + 1];
    let mut drops = Drops {
        seen: socket.kernel_drops().unwrap_or(0),
        said: None,
    };
    let end = loop {
        let got = socket.recv(&mut buf, &mut || drops.check(socket, inlet));
        match got {
            Ok(None) => break Ok(()),
            Ok(Some((n, from))) => {
                socket.heard(from);
                if !inlet.message(&buf[..n]) {
                    break Ok(());
                }
            }
            Err(e) if unreachable(&e) => socket.refusal(&e),
            Err(e) => break Err(e),
        }
    };
    // What the kernel dropped while the reader waited for the bridge counts too.
    drops.check(socket, inlet);
    end
}

/// The kernel's count of datagrams it dropped at the socket, as far as the reader has
/// passed it on.
struct Drops {
    seen: u32,
    /// When a drop was last logged.
    said: Option<Instant>,
}

impl Drops {
    /// Passes on what the kernel dropped since the last look, and logs it (at most
    /// every [`COMPLAIN_EVERY`]).
    fn check(&mut self, socket: &Socket, inlet: &mut dyn Inlet) {
        let Some(now) = socket.kernel_drops() else {
            return;
        };
        let new = now.wrapping_sub(self.seen);
        self.seen = now;
        if new == 0 {
            return;
        }
        inlet.missed(u64::from(new));
        if self.said.is_none_or(|at| at.elapsed() >= COMPLAIN_EVERY) {
            self.said = Some(Instant::now());
            warn!(
                "{}: the kernel dropped {}, its receive buffer full (they arrive faster \
                 than the other side takes them); counted as dropped",
                socket.name,
                count(u64::from(new), "datagram")
            );
        }
    }
}

/// The socket's way in from the bridge.
#[derive(Clone)]
struct Out {
    socket: Arc<Socket>,
    give_up: GiveUp,
}

impl Outbox for Out {
    /// Sends every piece; what the kernel would not send is counted as dropped, never
    /// an error.
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        Ok(self.socket.deliver(batch, false, &self.give_up).dropped)
    }
}

impl Direct for Out {
    /// Whole pieces, up to the first that finds no room in the socket.
    fn try_send(&mut self, batch: &Batch) -> Taken {
        self.socket.deliver(batch, true, &self.give_up)
    }
}

/// Stops the reader and waits for it, so the port is free again.
struct Stopper {
    socket: Arc<Socket>,
    done: Receiver<()>,
}

impl Stop for Stopper {
    fn stop(self: Box<Self>, deadline: Instant) {
        self.socket.stopped.store(true, Ordering::Release);
        #[cfg(unix)]
        let _ = self.socket.wake.0.shutdown(std::net::Shutdown::Both);
        let _ = self.done.recv_deadline(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_bounded_and_forgotten_when_silent() {
        let mut peers = Peers::new(2, Duration::from_secs(5));
        let t = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        peers.heard("x", a, t);
        peers.heard("x", b, t);
        peers.heard("x", a, t + Duration::from_secs(1));
        peers.heard("x", c, t + Duration::from_secs(2));
        assert_eq!(peers.current("x", t + Duration::from_secs(2)), [a, c]);
        assert!(peers.crowded, "more peers than the list holds");
        assert_eq!(peers.current("x", t + Duration::from_secs(6)), [c]);
        assert!(peers.current("x", t + Duration::from_secs(7)).is_empty());
    }
}
