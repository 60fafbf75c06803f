//! `udp://HOST:PORT` and `udp-listen://[ADDR:]PORT`: message endpoints on UDP. One
//! datagram is one line: a line from the other side goes out without its delimiter,
//! and a datagram that arrives reaches the other side with the delimiter appended
//! unless it ends with it (`--raw`: bytes unchanged either way, one read one datagram).
//!
//! - `udp://` sends to HOST:PORT. To a unicast address its socket is connected, so only
//!   datagrams from there come back as lines, and "port unreachable" is reported. To a
//!   broadcast (`broadcast=on`) or multicast address (`ttl=`, default 1) it is not:
//!   replies come from other addresses, and every datagram to its port is a line.
//! - `udp-listen://` takes datagrams from anyone (on 127.0.0.1 unless an address is
//!   given, as the other listeners). Lines go to the peers heard from in the last
//!   `timeout=` seconds (at most `--max-clients`, the oldest forgotten first), as a TCP
//!   listener's go to its connected clients; or, with `reply=HOST:PORT`, only there.
//!   `group=` joins an IPv4 multicast group on the listen address's interface.
//!
//! UDP loses datagrams by nature; what the kernel will not send is counted as dropped
//! (see `socket.rs`), and nothing of the kind ends the bridge. A bad address or a port
//! in use fails the open, as for any endpoint.

mod peers;
mod run;
mod settings;
mod socket;

use std::any::Any;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};

use log::info;

use super::contract::{Endpoint, Kind, Opening, Place};
use peers::Peers;
pub use settings::{Connect, DEFAULT_TIMEOUT, DEFAULT_TTL, DEFAULT_UDP_PEERS, Serve};
use settings::{NEEDS_BROADCAST, bind_address};
pub use socket::{MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use socket::{Socket, Targets};

/// `udp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp(pub Connect);

/// `udp-listen://[ADDR:]PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpListen(pub Serve);

/// Parses what follows `udp://`; `text` is the whole argument, for messages.
pub fn parse(text: &str, rest: &str) -> Result<Udp, String> {
    settings::parse_connect(text, rest).map(Udp)
}

/// Parses what follows `udp-listen://`.
pub fn parse_listen(text: &str, rest: &str) -> Result<UdpListen, String> {
    settings::parse_serve(text, rest).map(UdpListen)
}

impl Kind for Udp {
    fn name(&self) -> String {
        self.0.name()
    }

    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let c = &self.0;
        let dest = resolve(&c.dest, c.bind.0.map(|ip| ip.is_ipv4()))?;
        let sock = UdpSocket::bind(bind_address(c.bind, &dest))?;
        let multicast = dest.ip().is_multicast();
        if c.broadcast {
            sock.set_broadcast(true)?;
        }
        match dest {
            SocketAddr::V4(_) if multicast => sock.set_multicast_ttl_v4(c.ttl)?,
            SocketAddr::V6(_) if multicast && c.ttl != DEFAULT_TTL => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ttl= sets the hop limit of IPv4 multicast only; IPv6 multicast \
                     keeps the limit of 1",
                ));
            }
            _ => {}
        }
        let targets = match c.broadcast || multicast {
            true => Targets::To(dest),
            false => {
                sock.connect(dest).map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied => {
                        io::Error::new(e.kind(), format!("{} is {NEEDS_BROADCAST}", dest.ip()))
                    }
                    _ => e,
                })?;
                Targets::Peer
            }
        };
        let local = sock.local_addr()?;
        let anyone = match targets {
            Targets::Peer => "",
            _ => "; datagrams from any sender to that port become lines",
        };
        info!("{}: sending to {dest} from {local}{anyone}", opening.name);
        let socket = Socket::new(opening.name, sock, targets, &opening.defaults.framing)?;
        Ok(Endpoint::new(opening.name, Arc::new(socket)))
    }

    fn check_pair(&self, other: &dyn Kind) -> Result<(), String> {
        match other.as_any().downcast_ref::<UdpListen>() {
            Some(listen) => check_loop(self, listen),
            None => Ok(()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Kind for UdpListen {
    fn name(&self) -> String {
        self.0.name()
    }

    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let s = &self.0;
        let at = s.listen.addr;
        let sock = match (s.group, at.ip()) {
            (Some(group), IpAddr::V4(interface)) => {
                // Bound to the group itself, a socket takes only the group's datagrams;
                // Windows binds no multicast address, so there it takes any.
                let bound = match cfg!(unix) {
                    true => IpAddr::V4(group),
                    false => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                };
                let sock = UdpSocket::bind(SocketAddr::new(bound, at.port()))?;
                sock.join_multicast_v4(&group, &interface)?;
                sock
            }
            _ => UdpSocket::bind(at)?,
        };
        let local = sock.local_addr()?;
        let max = opening.defaults.max_clients.unwrap_or(DEFAULT_UDP_PEERS);
        let (targets, whom) = match &s.reply {
            Some(reply) => {
                let to = resolve(reply, Some(local.is_ipv4())).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("reply={reply}: {}", crate::error::os_message(&e)),
                    )
                })?;
                (Targets::To(to), format!("lines go to {to}"))
            }
            None => {
                let peers = Peers::new(max, s.timeout);
                let whom = format!(
                    "lines go to the peers heard from in the last {}s (at most {})",
                    s.timeout.as_secs(),
                    max.max(1)
                );
                (Targets::Heard(Mutex::new(peers)), whom)
            }
        };
        let scope = match at.ip().is_loopback() {
            true => " (this machine only; udp-listen://0.0.0.0:PORT serves others)",
            false => "",
        };
        let group = match s.group {
            Some(group) => format!(", in group {group} on {}", at.ip()),
            None => String::new(),
        };
        info!(
            "{}: listening on port {}{group}{scope}; {whom}",
            opening.name,
            local.port()
        );
        let socket = Socket::new(opening.name, sock, targets, &opening.defaults.framing)?;
        Ok(Endpoint::new(opening.name, Arc::new(socket)))
    }

    fn place(&self) -> Place {
        self.0.listen.place_for(true)
    }

    fn check_pair(&self, other: &dyn Kind) -> Result<(), String> {
        match other.as_any().downcast_ref::<Udp>() {
            Some(udp) => check_loop(udp, self),
            None => Ok(()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Refuses `udp` sending to `listen`, the other endpoint of the same bridge: every line
/// would come back and go round for ever.
fn check_loop(udp: &Udp, listen: &UdpListen) -> Result<(), String> {
    let (host, port) = udp.0.dest.rsplit_once(':').unwrap_or_default();
    let at = listen.0.listen.addr;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    let here = match ip {
        Ok(ip) => ip.is_loopback() || ip == at.ip() || at.ip().is_unspecified(),
        Err(_) => host == "localhost",
    };
    match here && port.parse() == Ok(at.port()) {
        true => Err(format!(
            "{}: sends to {} of the same bridge; every line would come back and go \
             round for ever",
            udp.name(),
            listen.name()
        )),
        false => Ok(()),
    }
}

/// The first address `addr` resolves to, of the IPv4 family if `v4` says so.
fn resolve(addr: &str, v4: Option<bool>) -> io::Result<SocketAddr> {
    let mut found = addr.to_socket_addrs()?;
    found
        .find(|a| v4.is_none_or(|v4| a.is_ipv4() == v4))
        .ok_or_else(|| {
            let family = match v4 {
                Some(true) => "IPv4",
                _ => "IPv6",
            };
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{addr} has no {family} address, as the local address has"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_sending_to_its_own_listener_is_refused() {
        let udp = |rest| parse("x", rest).unwrap();
        let listen = |rest| parse_listen("x", rest).unwrap();
        for (to, at) in [
            ("127.0.0.1:5000", "5000"),
            ("localhost:5000", "5000"),
            ("10.0.0.1:5000", "0.0.0.0:5000"),
            ("[::1]:5000", "[::1]:5000"),
        ] {
            let error = udp(to).check_pair(&listen(at)).unwrap_err();
            assert!(error.contains("go round for ever"), "{error}");
            assert!(listen(at).check_pair(&udp(to)).is_err());
        }
        assert!(udp("127.0.0.1:5001").check_pair(&listen("5000")).is_ok());
        assert!(udp("10.0.0.1:5000").check_pair(&listen("5000")).is_ok());
    }
}
