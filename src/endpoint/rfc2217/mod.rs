//! RFC 2217 (telnet COM-PORT-OPTION): the serial port across the bridge served as a
//! remote serial port. `rfc2217-listen://[ADDR:]PORT` lets esptool, pyserial's
//! `rfc2217://` URLs, labgrid and ser2net's gensio clients open the port over the
//! network, change its baud rate and drive DTR and RTS, as ser2net's telnet ports do.
//!
//! The protocol is written here with no I/O inside: [`telnet`] (the byte coding and
//! option negotiation), [`comport`] (the commands), [`port`] (the port as a server's
//! clients see it) and [`session`] (what a server answers); `server.rs` runs it on a
//! listener's client threads.
//!
//! A remote serial port carries bytes, not lines (esptool's SLIP frames, Modbus,
//! firmware), so this endpoint asks the bridge to forward bytes as they arrive unless
//! the command line frames lines itself ([`crate::endpoint::Kind::bytes`]).

use std::any::Any;
use std::io;
use std::net::IpAddr;

use std::time::Duration;

use super::contract::{Endpoint, Kind, Opening, Place};
use super::control::Line;
use super::listen::{self, Listen};
use super::serial;
use super::settings::{address_and_settings, on_off};
use super::tcp;
use super::tls::settings::{self as tls, Side};

mod client;
pub mod comport;
mod output;
pub mod port;
mod server;
pub mod session;
pub mod telnet;

/// Clients an `rfc2217-listen://` endpoint serves at once unless `--max-clients` says:
/// one, as a local port has one program at a time.
pub const DEFAULT_CLIENTS: usize = 1;

/// What DTR and RTS requests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reset {
    /// They reach the port.
    #[default]
    Pass,
    /// esptool's reset sequences run here, with their timing (see [`port`]).
    Esp,
    /// They are answered and go nowhere: nothing resets the board.
    None,
}

/// An address range clients may come from: `ADDR[/BITS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `192.168.1.20` (one address), `fd00::/8`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| {
            format!("'{addr}' is not an IP address; allow= takes ADDR[/BITS], e.g. 192.168.1.0/24")
        })?;
        let most = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => most,
            Some(bits) => match bits.parse::<u8>() {
                Ok(n) if n <= most && bits.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("the prefix length is 0 to {most}")),
            },
        };
        Ok(Cidr { net, bits })
    }

    /// Whether `ip` is in the range (an IPv4 address written as IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (ip, net, width) = match (ip, self.net) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => {
                (u128::from(ip.to_bits()), u128::from(net.to_bits()), 32)
            }
            (IpAddr::V6(ip), IpAddr::V6(net)) => (ip.to_bits(), net.to_bits(), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= width || ip >> shift == net >> shift
    }
}

/// `rfc2217-listen://[ADDR:]PORT[,reset=pass|esp|none][,allow=CIDR]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2217Listen {
    /// Where to listen.
    pub listen: Listen,
    /// What DTR and RTS requests do.
    pub reset: Reset,
    /// Where clients may come from; empty: anywhere the address is reachable from.
    pub allow: Vec<Cidr>,
}

/// Parses what follows `rfc2217-listen://`; `text` is the whole argument.
pub fn parse_listen(text: &str, rest: &str) -> Result<Rfc2217Listen, String> {
    let (mut reset, mut allow) = (Reset::default(), Vec::new());
    let mut secure = tls::Settings::new(Side::Server);
    let known = format!("reset, allow, {}", tls::SERVER_KEYS);
    let repeatable = [&["allow"][..], tls::REPEATABLE].concat();
    let addr = address_and_settings(text, rest, &known, &repeatable, |key, value| {
        match key {
            "reset" => {
                reset = match value {
                    "pass" => Reset::Pass,
                    "esp" => Reset::Esp,
                    "none" => Reset::None,
                    _ => return Err("reset is pass, esp or none".into()),
                }
            }
            "allow" => allow.push(Cidr::parse(value)?),
            _ => return secure.take(key, value),
        }
        Ok(true)
    })?;
    // Served over TLS when given a certificate (or any TLS setting, which then needs one).
    let tls = match secure == tls::Settings::new(Side::Server) {
        true => None,
        false => {
            secure.check(text)?;
            Some(secure)
        }
    };
    Ok(Rfc2217Listen {
        listen: Listen {
            tls,
            ..listen::parse(text, addr)?
        },
        reset,
        allow,
    })
}

impl Kind for Rfc2217Listen {
    fn name(&self) -> String {
        format!("rfc2217-listen://{}", self.listen.addr)
    }

    /// Binds the port; clients are taken once the bridge starts the endpoint.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let max = opening.defaults.max_clients.unwrap_or(DEFAULT_CLIENTS);
        let server = server::Server::new(opening.name, self, max);
        listen::bind(opening.name, &self.listen, max, server)
    }

    fn place(&self) -> Place {
        self.listen.place()
    }

    fn bytes(&self, _: &[&dyn Kind]) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `rfc2217://HOST:PORT[,baud=N][,data=..][,parity=..][,stop=..][,flow=..][,dtr=..]
/// [,rts=..][,settle=MS]`: a remote serial port, with a local port's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc2217 {
    /// `HOST:PORT`.
    pub addr: String,
    /// The line settings; a baud rate of `None` takes `--baud`.
    pub baud: Option<u32>,
    line: Line,
    /// DTR and RTS to set at connect, if given.
    pub dtr: Option<bool>,
    /// See `dtr`.
    pub rts: Option<bool>,
    /// How long to hold lines after connecting.
    pub settle: Option<Duration>,
    /// TLS settings, if it connects over TLS (`tls=on` or any TLS setting).
    pub tls: Option<tls::Settings>,
}

/// Parses what follows `rfc2217://`; `text` is the whole argument.
pub fn parse(text: &str, rest: &str) -> Result<Rfc2217, String> {
    // TLS settings first (any of them, or tls=on, means TLS); the rest are a local
    // port's settings, parsed as a port's are; messages name the argument.
    let (rest, tls) = tls_client(text, rest)?;
    let settings: serial::Settings = rest.parse().map_err(|e: String| format!("rfc2217://{e}"))?;
    let addr = rest.split(',').next().unwrap_or_default();
    tcp::parse(text, addr).map_err(|e| e.replace("tcp://", "rfc2217://"))?;
    if addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        == Some(0)
    {
        return Err(format!("{text}: port must be a number from 1 to 65535"));
    }
    if settings.usb.is_some() {
        return Err(format!("{text}: expected rfc2217://HOST:PORT"));
    }
    if settings.hupcl.is_some() {
        return Err(format!(
            "{text}: hupcl is a setting of the remote port's own machine, not of its clients"
        ));
    }
    Ok(Rfc2217 {
        addr: addr.to_string(),
        baud: settings.baud,
        line: Line {
            baud: settings
                .baud
                .unwrap_or(crate::endpoint::contract::DEFAULT_BAUD),
            data: settings.data,
            parity: settings.parity,
            stop: settings.stop,
            flow: settings.flow,
        },
        dtr: settings.dtr,
        rts: settings.rts,
        settle: settings.settle,
        tls,
    })
}

/// Takes the TLS settings out of an `rfc2217://` argument's: what is left, and TLS's
/// settings if it asks for TLS (`tls=on`, or any TLS setting).
fn tls_client(text: &str, rest: &str) -> Result<(String, Option<tls::Settings>), String> {
    let mut settings = tls::Settings::new(Side::Client);
    let (mut kept, mut flag, mut given) = (Vec::new(), None, false);
    for (i, part) in tls::flags(rest).split(',').enumerate() {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let bad = |why: &str| format!("{text}: bad setting '{part}': {why}");
        match (i, key) {
            (0, _) => kept.push(part.to_string()),
            (_, "tls") => flag = Some(on_off(value).ok_or_else(|| bad("tls is on or off"))?),
            _ => match settings.take(key, value).map_err(|why| bad(&why))? {
                true => given = true,
                false => kept.push(part.to_string()),
            },
        }
    }
    match (flag, given) {
        (Some(false), true) => Err(format!("{text}: TLS settings with tls=off; drop one")),
        (Some(true), _) | (None, true) => {
            settings.check(text)?;
            Ok((kept.join(","), Some(settings)))
        }
        _ => Ok((kept.join(","), None)),
    }
}

impl Kind for Rfc2217 {
    fn name(&self) -> String {
        format!("rfc2217://{}", self.addr)
    }

    /// A TLS failure that waiting will not mend ends even `--reconnect` at start.
    fn lasting(&self, error: &io::Error) -> bool {
        self.tls.is_some() && crate::endpoint::tls::explain::lasting(error)
    }

    /// Connects, negotiates, and sets the port as its settings say (`--baud` for a
    /// baud rate they leave out), each answer checked.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let line = Line {
            baud: self.baud.unwrap_or(opening.defaults.baud),
            ..self.line
        };
        client::open(self, line, opening)
    }

    /// Across from a pty it is that pty's remote port: a flasher's binary frames must
    /// pass as they come. Across from anything else it frames lines, as a local port.
    fn bytes(&self, others: &[&dyn Kind]) -> bool {
        others
            .iter()
            .any(|other| other.as_any().is::<super::pty::Pty>())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse() {
        let s = parse_listen("x", "0.0.0.0:4000,reset=esp,allow=10.0.0.0/8,allow=::1").unwrap();
        assert_eq!(s.listen.addr.to_string(), "0.0.0.0:4000");
        assert_eq!(s.reset, Reset::Esp);
        assert_eq!(s.allow.len(), 2);
        let s = parse_listen("x", "4000").unwrap();
        assert_eq!((s.reset, s.allow.len()), (Reset::Pass, 0));
        assert_eq!(s.listen.addr.to_string(), "127.0.0.1:4000");
        for (rest, why) in [
            ("4000,reset=dtr", "pass, esp or none"),
            ("4000,allow=10.0.0.0/33", "0 to 32"),
            ("4000,allow=10.0.0.0/+8", "0 to 32"),
            ("4000,allow=lan", "not an IP address"),
            ("4000,reset=esp,reset=none", "given twice"),
            ("4000,baud=9600", "unknown setting"),
            ("x:4000", "must be an IP address"),
        ] {
            let error = parse_listen("rfc2217-listen://".to_string().as_str(), rest).unwrap_err();
            assert!(error.contains(why), "{rest}: {error}");
        }
    }

    #[test]
    fn client_settings_are_a_ports() {
        let c = parse(
            "rfc2217://pi:4000,baud=115200,parity=even,dtr=off",
            "pi:4000,baud=115200,parity=even,dtr=off",
        )
        .unwrap();
        assert_eq!(c.addr, "pi:4000");
        assert_eq!(
            (c.baud, c.line.parity, c.dtr),
            (Some(115_200), serialport::Parity::Even, Some(false))
        );
        for (rest, why) in [
            ("pi", "expected rfc2217://HOST:PORT"),
            ("pi:x", "port must be a number"),
            ("pi:0", "from 1 to 65535"),
            (
                "pi:4000,baud=fast",
                "rfc2217://pi:4000: bad setting 'baud=fast'",
            ),
            ("pi:4000,hupcl=off", "hupcl"),
            ("pi:4000,speed=1", "unknown setting"),
        ] {
            let error = parse(&format!("rfc2217://{rest}"), rest).unwrap_err();
            assert!(error.contains(why), "{rest}: {error}");
        }
    }

    #[test]
    fn ranges_hold_what_they_say() {
        let lan = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(!lan.contains("::1".parse().unwrap()));
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
    }
}
