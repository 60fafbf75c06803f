//! The settings of `udp://` and `udp-listen://`, and their parsers. No I/O.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::endpoint::listen::{self, Listen};
use crate::endpoint::settings::{LONGEST_WAIT, address_and_settings, on_off};

/// The hop limit of multicast datagrams unless `ttl=` says: the local network only.
pub const DEFAULT_TTL: u32 = 1;

/// How long a peer of `udp-listen://` is sent lines after its last datagram, unless
/// `timeout=` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Peers a `udp-listen://` endpoint sends lines to at once unless `--max-clients` says.
pub const DEFAULT_UDP_PEERS: usize = 16;

/// A `udp://HOST:PORT` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `HOST:PORT`, as written.
    pub dest: String,
    /// `bind=[ADDR:]PORT`: the local address (`None`: any) and port (0: a free one).
    pub bind: (Option<IpAddr>, u16),
    /// `broadcast=on`.
    pub broadcast: bool,
    /// `ttl=N`, for multicast destinations.
    pub ttl: u32,
}

/// A `udp-listen://[ADDR:]PORT` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// Where to listen; with `group`, the interface to join it on.
    pub listen: Listen,
    /// `group=`: the IPv4 multicast group to join.
    pub group: Option<Ipv4Addr>,
    /// `reply=HOST:PORT`: where every line goes, instead of the peers heard from.
    pub reply: Option<String>,
    /// `timeout=SECS`: how long a peer is sent lines after its last datagram.
    pub timeout: Duration,
}

impl Connect {
    /// The name used in messages.
    pub fn name(&self) -> String {
        format!("udp://{}", self.dest)
    }
}

impl Serve {
    /// The name used in messages: where it listens, without its settings.
    pub fn name(&self) -> String {
        format!("udp-listen://{}", self.listen.addr)
    }
}

/// Parses what follows `udp://`.
pub fn parse_connect(text: &str, rest: &str) -> Result<Connect, String> {
    let (mut bind, mut broadcast, mut ttl) = ((None, 0), false, DEFAULT_TTL);
    let dest = address_and_settings(text, rest, "bind, broadcast, ttl", &[], |key, value| {
        match key {
            "bind" => bind = local(value)?,
            "broadcast" => broadcast = on_off(value).ok_or("broadcast is on or off")?,
            "ttl" => match value.parse::<u32>() {
                Ok(n) if n <= 255 => ttl = n,
                _ => return Err("ttl is a hop count from 0 to 255".into()),
            },
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some((host, port)) = dest.rsplit_once(':') else {
        return Err(format!(
            "{text}: expected udp://HOST:PORT, e.g. udp://192.168.1.20:10110"
        ));
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{text}: missing host before ':{port}'"));
    }
    match port.parse::<u16>() {
        Ok(1..) => {}
        _ => return Err(format!("{text}: port must be a number from 1 to 65535")),
    }
    if host == "255.255.255.255" && !broadcast {
        return Err(format!("{text}: {NEEDS_BROADCAST}"));
    }
    Ok(Connect {
        dest: dest.to_string(),
        bind,
        broadcast,
        ttl,
    })
}

/// Why a broadcast destination is refused.
pub const NEEDS_BROADCAST: &str =
    "a broadcast address; add broadcast=on to send to every machine on that network";

/// Parses `bind=[ADDR:]PORT`.
fn local(value: &str) -> Result<(Option<IpAddr>, u16), String> {
    let (addr, port) = match value.rsplit_once(':') {
        Some((addr, port)) => (Some(addr), port),
        None => (None, value),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| "bind is [ADDR:]PORT, the port a number from 0 to 65535".to_string())?;
    let ip = match addr {
        None => None,
        Some(addr) => Some(
            addr.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| format!("'{addr}' must be an IP address of this machine"))?,
        ),
    };
    Ok((ip, port))
}

/// Parses what follows `udp-listen://`.
pub fn parse_serve(text: &str, rest: &str) -> Result<Serve, String> {
    let (mut group, mut reply, mut timeout) = (None, None, DEFAULT_TIMEOUT);
    let addr = address_and_settings(text, rest, "group, reply, timeout", &[], |key, value| {
        match key {
            "group" => group = Some(multicast(value)?),
            "reply" => match value.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    reply = Some(value.to_string());
                }
                _ => return Err("reply is HOST:PORT, e.g. reply=192.168.1.20:10110".into()),
            },
            "timeout" => timeout = seconds(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let listen = listen::parse(text, addr)?;
    if group.is_some() && !listen.addr.is_ipv4() {
        return Err(format!(
            "{text}: group= is an IPv4 group, joined on an IPv4 address of this machine"
        ));
    }
    Ok(Serve {
        listen,
        group,
        reply,
        timeout,
    })
}

/// Parses `group=`: an IPv4 multicast address.
fn multicast(value: &str) -> Result<Ipv4Addr, String> {
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_multicast() => Ok(ip),
        Ok(IpAddr::V6(ip)) if ip.is_multicast() => {
            Err("IPv6 multicast groups are not supported yet; use an IPv4 group".into())
        }
        _ => Err("group is an IPv4 multicast address, from 224.0.0.0 to 239.255.255.255".into()),
    }
}

/// Parses `timeout=SECS`.
fn seconds(value: &str) -> Result<Duration, String> {
    let most = LONGEST_WAIT.as_secs();
    match value.parse::<u64>() {
        Ok(secs) if (1..=most).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("timeout is in seconds, from 1 to {most} (a day)")),
    }
}

/// The address of `bind=`, or any address of `family`'s kind.
pub fn bind_address(bind: (Option<IpAddr>, u16), dest: &SocketAddr) -> SocketAddr {
    let any = match dest {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(bind.0.unwrap_or(any), bind.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_settings_are_parsed_and_absurd_ones_refused() {
        let c = parse_connect("x", "h:1,bind=127.0.0.1:0,broadcast=on,ttl=0").unwrap();
        assert_eq!(c.bind, (Some("127.0.0.1".parse().unwrap()), 0));
        assert!(c.broadcast);
        assert_eq!(c.ttl, 0);
        assert_eq!(parse_connect("x", "[::1]:9").unwrap().dest, "[::1]:9");
        assert_eq!(
            parse_connect("x", "h:9,bind=5000").unwrap().bind,
            (None, 5000)
        );
        for (rest, why) in [
            ("h", "expected udp://HOST:PORT"),
            (":9", "missing host"),
            ("h:0", "port must be a number from 1"),
            ("h:70000", "port must be a number"),
            ("h:9,ttl=256", "ttl is a hop count"),
            ("h:9,ttl=-1", "ttl is a hop count"),
            ("h:9,bind=x:1", "'x' must be an IP address"),
            ("h:9,bind=1:99999", "bind is [ADDR:]PORT"),
            ("h:9,broadcast=yes", "broadcast is on or off"),
            ("255.255.255.255:9", "add broadcast=on"),
            ("h:9,reply=h:1", "unknown setting"),
        ] {
            let error = parse_connect("x", rest).unwrap_err();
            assert!(error.contains(why), "{rest}: {error}");
        }
        assert!(parse_connect("x", "255.255.255.255:9,broadcast=on").is_ok());
    }

    #[test]
    fn udp_listen_settings_are_parsed_and_absurd_ones_refused() {
        let s = parse_serve("x", "5000,group=239.1.2.3,reply=h:7,timeout=5").unwrap();
        assert_eq!(s.listen.addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(s.group, Some(Ipv4Addr::new(239, 1, 2, 3)));
        assert_eq!(s.reply.as_deref(), Some("h:7"));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(parse_serve("x", "5000").unwrap().timeout, DEFAULT_TIMEOUT);
        for (rest, why) in [
            ("5000,group=10.0.0.1", "IPv4 multicast address"),
            (
                "5000,group=ff02::1",
                "IPv6 multicast groups are not supported",
            ),
            ("[::1]:5000,group=239.1.2.3", "IPv4 group"),
            ("5000,reply=nohost", "reply is HOST:PORT"),
            ("5000,reply=h:x", "reply is HOST:PORT"),
            ("5000,timeout=0", "timeout is in seconds"),
            ("5000,timeout=86401", "timeout is in seconds"),
            ("5000,ttl=1", "unknown setting"),
            ("x:5000", "must be an IP address"),
        ] {
            let error = parse_serve("x", rest).unwrap_err();
            assert!(error.contains(why), "{rest}: {error}");
        }
    }
}
