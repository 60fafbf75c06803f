//! Where a listener listens: `[ADDR:]PORT` (127.0.0.1 unless an address is given),
//! and for a TLS listener its certificate and TLS settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::endpoint::contract::Place;
use crate::endpoint::settings::address_and_settings;
use crate::endpoint::tls::settings::{REPEATABLE, SERVER_KEYS, Settings, Side};

/// Where to listen: `[ADDR:]PORT`, and with what certificate for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Where to listen.
    pub addr: SocketAddr,
    /// TLS settings (`tls-listen://`, `wss-listen://`).
    pub tls: Option<Settings>,
}

impl Listen {
    /// Port 0 is a new port each time; any other is named by its address.
    pub fn place(&self) -> Place {
        self.place_for(false)
    }

    /// The same for a port of UDP (`udp`) or TCP.
    pub fn place_for(&self, udp: bool) -> Place {
        match self.addr.port() {
            0 => Place::New,
            _ => Place::Listening {
                udp,
                addr: self.addr,
            },
        }
    }
}

/// Parses `[ADDR:]PORT`; `text` is the whole argument, for messages.
pub fn parse(text: &str, rest: &str) -> Result<Listen, String> {
    let (addr, port) = match rest.rsplit_once(':') {
        Some((addr, port)) => (Some(addr), port),
        None => (None, rest),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
    let ip = match addr {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(addr) => addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!(
                    "{text}: '{addr}' must be an IP address to listen on, such as \
                     127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
                )
            })?,
    };
    Ok(Listen {
        addr: SocketAddr::new(ip, port),
        tls: None,
    })
}

/// Parses `[ADDR:]PORT[,settings]` of a TLS listener: the address as [`parse`] does, then
/// its TLS settings; `more` takes the listener's own settings first (false: not one of
/// them), `keys` lists them all, for messages, and `repeatable` those of its own that
/// may come more than once.
pub fn parse_tls<'a>(
    text: &str,
    rest: &'a str,
    keys: &str,
    repeatable: &[&str],
    mut more: impl FnMut(&'a str, &'a str) -> Result<bool, String>,
) -> Result<Listen, String> {
    let mut tls = Settings::new(Side::Server);
    let repeatable = [repeatable, REPEATABLE].concat();
    let addr = address_and_settings(text, rest, keys, &repeatable, |key, value| {
        Ok(more(key, value)? || tls.take(key, value)?)
    })?;
    tls.check(text)?;
    Ok(Listen {
        tls: Some(tls),
        ..parse(text, addr)?
    })
}

/// Parses `tls-listen://[ADDR:]PORT,cert=FILE,key=FILE[,client-ca=FILE]`.
pub fn parse_tls_lines(text: &str, rest: &str) -> Result<Listen, String> {
    parse_tls(text, rest, SERVER_KEYS, &[], |_, _| Ok(false))
}
