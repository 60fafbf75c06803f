//! [`Spec`]: one side of the bridge as the user named it, parsed from a positional
//! argument, shown in every message about it, compared to catch the same endpoint
//! given twice, and opened into an [`Endpoint`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{Endpoint, OpenOptions, listen, mqtt, serial, tcp, ws};
use crate::error::Error;

/// One side of the bridge, as the user described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A serial port: a device path (`/dev/ttyACM0`, `COM3`) with its line settings.
    Serial(serial::Settings),
    /// A TCP client connecting to `HOST:PORT`.
    Tcp(String),
    /// A TCP server accepting line clients.
    TcpListen(listen::Listen),
    /// A WebSocket client.
    Ws(ws::Connect),
    /// A WebSocket server, with its console page.
    WsListen(ws::Serve),
    /// A client of an MQTT broker: lines are messages on topics.
    Mqtt(mqtt::Settings),
    /// Standard input and output.
    Stdio,
    /// A new pseudo-terminal, optionally reached through a symlink at this path.
    Pty(Option<String>),
}

impl Spec {
    /// Fills in settings the user left out from the command-line defaults
    /// (`--baud`, `--settle`).
    pub fn with_defaults(mut self, baud: u32, settle: Option<Duration>) -> Spec {
        if let Spec::Serial(settings) = &mut self {
            settings.baud.get_or_insert(baud);
            if settings.settle.is_none() {
                settings.settle = settle;
            }
        }
        self
    }

    /// How long to hold lines for this endpoint after it opens (`settle=MS`).
    pub fn settle(&self) -> Option<Duration> {
        match self {
            Spec::Serial(settings) => settings.settle.filter(|t| !t.is_zero()),
            _ => None,
        }
    }

    /// The file system path this endpoint names, if any: a serial port's, or a pty's
    /// link.
    pub fn path(&self) -> Option<&str> {
        match self {
            Spec::Serial(settings) => Some(&settings.path),
            Spec::Pty(link) => link.as_deref(),
            _ => None,
        }
    }

    /// Whether EOF from this endpoint is a normal end (stdin), not a failure.
    pub fn ends_input(&self) -> bool {
        matches!(self, Spec::Stdio)
    }

    /// Opens the endpoint, ready to bridge. `interrupted` is asked now and then while
    /// an open waits (a TCP connect); once it says yes the open gives up with
    /// `ErrorKind::Interrupted`.
    pub fn open(
        &self,
        options: &OpenOptions,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Endpoint, Error> {
        let name = self.to_string();
        let shape = match self {
            Spec::Serial(settings) => serial::open(settings),
            Spec::Tcp(addr) => tcp::connect(&name, addr, interrupted),
            Spec::TcpListen(listen) => {
                let max = options.max_clients.unwrap_or(listen::DEFAULT_TCP_CLIENTS);
                let lines = listen::Lines {
                    name: name.clone(),
                    max_clients: max,
                };
                listen::bind(&name, listen, max, lines)
            }
            Spec::Ws(connect) => ws::connect(&name, connect, options, interrupted),
            Spec::WsListen(serve) => ws::serve(&name, serve, options),
            Spec::Mqtt(settings) => mqtt::open(&name, settings, options, interrupted),
            Spec::Stdio => Ok(super::stdio::open()),
            #[cfg(unix)]
            Spec::Pty(link) => super::pty::open(&name, link.as_deref()),
            #[cfg(not(unix))]
            Spec::Pty(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "pseudo-terminals exist on Unix only; use a virtual COM port pair instead",
            )),
        };
        match shape {
            Ok(shape) => Ok(Endpoint { name, shape }),
            Err(source) => Err(Error::Open {
                endpoint: name,
                source,
            }),
        }
    }
}

impl FromStr for Spec {
    type Err = String;

    /// Parses a positional argument. The error says what is wrong with it.
    fn from_str(text: &str) -> Result<Spec, String> {
        if text == "-" {
            return Ok(Spec::Stdio);
        }
        if text == "pty" {
            return Ok(Spec::Pty(None));
        }
        if let Some(link) = text.strip_prefix("pty:") {
            if link.is_empty() {
                return Err(format!("{text}: missing the link path after 'pty:'"));
            }
            return Ok(Spec::Pty(Some(link.to_string())));
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            return match scheme {
                "tcp" | "socket" => tcp::parse_connect(text, rest).map(Spec::Tcp),
                "tcp-listen" => listen::parse(text, rest).map(Spec::TcpListen),
                "ws" => ws::parse_connect(text, rest).map(Spec::Ws),
                "ws-listen" => ws::parse_serve(text, rest).map(Spec::WsListen),
                "mqtt" => mqtt::parse(text, rest).map(Spec::Mqtt),
                "mqtts" => Err(format!(
                    "{text}: MQTT over TLS is not supported yet; use mqtt://HOST (port 1883) \
                     on a trusted network"
                )),
                "wss" => Err(format!(
                    "{text}: wss:// (WebSocket over TLS) is not supported yet; put a TLS proxy \
                     in front, or use ws://"
                )),
                _ => Err(format!(
                    "{text}: unknown scheme '{scheme}://'; use tcp://HOST:PORT, \
                     tcp-listen://[ADDR:]PORT, ws://HOST:PORT[/PATH], ws-listen://[ADDR:]PORT, \
                     mqtt://HOST,pub=TOPIC,sub=FILTER, -, pty, usb:VID:PID, or a serial port path"
                )),
            };
        }
        serial::Settings::from_str(text).map(Spec::Serial)
    }
}

impl fmt::Display for Spec {
    /// The name used in every message about this endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Serial(settings) => f.write_str(&settings.path),
            Spec::Tcp(addr) => write!(f, "tcp://{addr}"),
            Spec::TcpListen(listen) => write!(f, "tcp-listen://{}", listen.addr),
            Spec::Ws(connect) => f.write_str(&connect.name()),
            Spec::WsListen(serve) => write!(f, "ws-listen://{}", serve.listen.addr),
            Spec::Mqtt(settings) => write!(f, "{settings}"),
            Spec::Stdio => f.write_str("-"),
            Spec::Pty(None) => f.write_str("pty"),
            Spec::Pty(Some(link)) => write!(f, "pty:{link}"),
        }
    }
}

/// Walks the `,key=value` settings that follow an endpoint's address; `name` starts
/// every message. `known` lists the keys, for messages; each may come once, but those
/// in `repeatable`. `setting` takes a key and its value and returns false for a key it
/// does not know, or why the value is wrong.
pub fn each_setting<'a>(
    name: &str,
    parts: impl Iterator<Item = &'a str>,
    known: &str,
    repeatable: &[&str],
    mut setting: impl FnMut(&'a str, &'a str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut seen = Vec::new();
    for part in parts {
        let bad = |why: &str| format!("{name}: bad setting '{part}': {why}");
        let Some((key, value)) = part.split_once('=') else {
            return Err(bad(&format!("expected key=value, one of {known}")));
        };
        if seen.contains(&key) && !repeatable.contains(&key) {
            return Err(bad("given twice"));
        }
        seen.push(key);
        if !setting(key, value).map_err(|why| bad(&why))? {
            return Err(bad(&format!("unknown setting; known ones are {known}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses() {
        assert_eq!("-".parse::<Spec>().unwrap(), Spec::Stdio);
        assert_eq!("pty".parse::<Spec>().unwrap(), Spec::Pty(None));
        assert_eq!(
            "pty:/tmp/ttyV0".parse::<Spec>().unwrap(),
            Spec::Pty(Some("/tmp/ttyV0".into()))
        );
        assert_eq!(
            "tcp://localhost:5000".parse::<Spec>().unwrap(),
            Spec::Tcp("localhost:5000".into())
        );
        assert_eq!(
            "socket://10.0.0.2:7".parse::<Spec>().unwrap(),
            Spec::Tcp("10.0.0.2:7".into())
        );
        let Spec::TcpListen(listen) = "tcp-listen://5000".parse::<Spec>().unwrap() else {
            panic!("not a listener");
        };
        assert_eq!(listen.addr.to_string(), "127.0.0.1:5000");
        let Spec::TcpListen(listen) = "tcp-listen://0.0.0.0:5000".parse::<Spec>().unwrap() else {
            panic!("not a listener");
        };
        assert_eq!(listen.addr.to_string(), "0.0.0.0:5000");
        assert!(matches!(
            "/dev/ttyS0".parse::<Spec>().unwrap(),
            Spec::Serial(_)
        ));
        let Spec::Mqtt(mqtt) = "mqtt://broker,pub=a,sub=b".parse::<Spec>().unwrap() else {
            panic!("not mqtt");
        };
        assert_eq!(mqtt.address(), "broker:1883");
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "-",
            "pty",
            "pty:/tmp/x",
            "tcp://h:1",
            "tcp-listen://[::1]:80",
            "mqtt://me@broker:1884,pub=lab/uno1,sub=lab/uno2",
            "COM3",
        ] {
            assert_eq!(text.parse::<Spec>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (text, why) in [
            ("wss://host:1", "not supported yet"),
            ("ftp://host:1", "unknown scheme 'ftp://'"),
            ("ws://:80", "missing host"),
            ("ws://h:x", "port must be a number"),
            ("ws-listen://8080,token=", "the token is empty"),
            ("ws-listen://8080,origin=dash", "scheme and host"),
            ("ws-listen://8080,keepalive=0", "from 1 to 86400"),
            ("ws://h:1,nope=1", "unknown setting"),
            (
                "ws://h:1,keepalive=5,keepalive=9",
                "'keepalive=9': given twice",
            ),
            ("ws-listen://8080,token=a,token=b", "'token=b': given twice"),
            ("ws-listen://8080,nope", "expected key=value"),
            ("tcp://host", "expected tcp://HOST:PORT"),
            ("tcp://host:http", "port must be a number"),
            ("tcp://:80", "missing host"),
            ("tcp-listen://x:y", "port must be a number"),
            ("tcp-listen://nosuch:80", "an IP address"),
            ("pty:", "missing the link path"),
        ] {
            let error = text.parse::<Spec>().unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        // Origins add up.
        let two = "ws-listen://8080,origin=http://a,origin=http://b".parse::<Spec>();
        assert!(two.is_ok(), "{two:?}");
    }

    #[test]
    fn only_stdin_ends_normally_and_only_serial_settles() {
        assert!(Spec::Stdio.ends_input());
        assert!(!Spec::Pty(None).ends_input());
        let spec: Spec = "/dev/x,settle=20".parse().unwrap();
        assert_eq!(spec.settle(), Some(Duration::from_millis(20)));
        let spec: Spec = "/dev/x,settle=0".parse().unwrap();
        assert_eq!(spec.settle(), None);
        assert_eq!(Spec::Stdio.settle(), None);
    }
}
