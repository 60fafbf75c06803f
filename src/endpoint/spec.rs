//! [`Spec`]: one side of the bridge as the user named it, parsed from a positional
//! argument ([`super::schemes`]), shown in every message about it, compared to catch
//! the same endpoint given twice, and opened into an [`Endpoint`].

use std::any::Any;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::contract::{Defaults, Endpoint, Kind, Opening, Place};
use super::schemes;
use crate::error::Error;

/// One side of the bridge, as the user described it: a kind of endpoint, configured.
#[derive(Clone)]
pub struct Spec(Arc<dyn Kind>);

impl Spec {
    /// A spec of a kind the registry does not know: for tests, and for programs that
    /// use the bridge as a library with a kind of their own.
    pub fn of(kind: impl Kind) -> Spec {
        Spec(Arc::new(kind))
    }

    /// Opens the endpoint, ready to bridge, with the command line's `defaults`.
    /// `interrupted` is asked now and then while an open waits (a connect); once it
    /// says yes the open gives up. The error carries the kind's own hint.
    pub fn open(
        &self,
        defaults: &Defaults,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Endpoint, Error> {
        let name = self.0.name();
        let opening = Opening::new(&name, defaults, interrupted);
        self.0.open(&opening).map_err(|source| Error::Open {
            why: self.0.why(&source),
            lasting: self.0.lasting(&source),
            endpoint: name,
            source,
        })
    }

    /// Where the endpoint is, for the checks on the command line.
    pub fn place(&self) -> Place {
        self.0.place()
    }

    /// Refuses a pairing with `other` that cannot work; see [`Kind::check_pair`].
    pub fn check_pair(&self, other: &Spec) -> Result<(), String> {
        self.0.check_pair(&*other.0)
    }

    /// Whether, bridged with the rest of `all` (which holds it), it carries bytes that
    /// lines must not cut; see [`Kind::bytes`].
    pub fn bytes(&self, all: &[Spec]) -> bool {
        let others: Vec<&dyn Kind> = all
            .iter()
            .filter(|spec| !Arc::ptr_eq(&spec.0, &self.0))
            .map(|spec| &*spec.0)
            .collect();
        self.0.bytes(&others)
    }

    /// The kind's own type, if it is `K` (for tests and checks of one kind).
    pub fn kind<K: Any>(&self) -> Option<&K> {
        self.0.as_any().downcast_ref()
    }
}

impl FromStr for Spec {
    type Err = String;

    /// Parses a positional argument. The error says what is wrong with it.
    fn from_str(text: &str) -> Result<Spec, String> {
        schemes::parse(text).map(Spec)
    }
}

impl fmt::Display for Spec {
    /// The name used in every message about this endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name())
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{listen, mqtt, pty, serial, stdio, tcp};

    fn spec(text: &str) -> Spec {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_kind_parses() {
        assert!(spec("-").kind::<stdio::Stdio>().is_some());
        assert_eq!(spec("pty").place(), Place::New);
        assert!(spec("pty").kind::<pty::Pty>().is_some());
        assert_eq!(
            spec("pty:/tmp/ttyV0").place(),
            Place::Path("/tmp/ttyV0".into())
        );
        assert_eq!(
            spec("tcp://localhost:5000").to_string(),
            "tcp://localhost:5000"
        );
        assert!(spec("tcp://localhost:5000").kind::<tcp::Tcp>().is_some());
        assert_eq!(spec("socket://10.0.0.2:7").to_string(), "tcp://10.0.0.2:7");
        let listen = spec("tcp-listen://5000");
        let listen = listen.kind::<listen::Listen>().unwrap();
        assert_eq!(listen.addr.to_string(), "127.0.0.1:5000");
        let listen = spec("tcp-listen://0.0.0.0:5000");
        let listen = listen.kind::<listen::Listen>().unwrap();
        assert_eq!(listen.addr.to_string(), "0.0.0.0:5000");
        assert!(spec("/dev/ttyS0").kind::<serial::Settings>().is_some());
        let mqtt = spec("mqtt://broker,pub=a,sub=b");
        assert_eq!(
            mqtt.kind::<mqtt::Settings>().unwrap().address(),
            "broker:1883"
        );
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
            assert_eq!(spec(text).to_string(), text);
        }
    }

    #[test]
    fn places() {
        assert_eq!(spec("-").place(), Place::Stdio);
        assert_eq!(spec("/dev/x").place(), Place::Path("/dev/x".into()));
        assert_eq!(spec("tcp://h:1").place(), Place::Named);
        assert_eq!(spec("tcp-listen://0").place(), Place::New);
        assert_eq!(spec("ws-listen://0").place(), Place::New);
        let listening = |udp, addr: &str| Place::Listening {
            udp,
            addr: addr.parse().unwrap(),
        };
        assert_eq!(
            spec("ws-listen://80").place(),
            listening(false, "127.0.0.1:80")
        );
        assert_eq!(
            spec("udp-listen://[::]:80").place(),
            listening(true, "[::]:80")
        );
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (text, why) in [
            ("wss://host:1,bogus=1", "known ones are keepalive, ca, cert"),
            ("mqtts://host,pub=a,cert=x.pem", "cert= needs its key=FILE"),
            (
                "tls-listen://8080",
                "needs its certificate: cert=FILE,key=FILE",
            ),
            (
                "tls://host:1,ca=/nonexistent/ca.pem",
                "ca=/nonexistent/ca.pem",
            ),
            ("ftp://host:1", "unknown scheme 'ftp://'"),
            ("ws://:80", "missing host"),
            ("ws://h:x", "port must be a number"),
            ("ws-listen://8080,token=", "the token is empty"),
            ("ws-listen://8080,origin=dash", "scheme and host"),
            ("ws-listen://8080,keepalive=0", "from 1 to 86400"),
            ("ws-listen://8080,history=-1", "from 0 (none) to 100000"),
            ("ws-listen://8080,history=100001", "from 0 (none) to 100000"),
            (
                "ws-listen://8080,history=18446744073709551616",
                "from 0 (none) to 100000",
            ),
            (
                "wss-listen://8080,history=x,cert=a,key=b",
                "history is the lines",
            ),
            ("ws://h:1,nope=1", "unknown setting"),
            (
                "ws://h:1,keepalive=5,keepalive=9",
                "'keepalive=9': given twice",
            ),
            (
                "ws-listen://8080,token=a,token=b",
                "'token=***': given twice",
            ),
            ("ws-listen://8080,token=a%zz", "must start a %XX escape"),
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
    fn open_failures_carry_the_kind_s_own_hint() {
        let defaults = Defaults::default();
        let never = || false;
        let port = spec("/dev/serial-bridge-no-such-port").open(&defaults, &never);
        let port = port.unwrap_err().to_string();
        assert!(
            port.contains("no such port (run `serial-bridge --list`"),
            "{port}"
        );
        // A name that does not resolve is no port to look for with --list.
        let pty = spec("pty:/nonexistent-dir/link").open(&defaults, &never);
        let pty = pty.unwrap_err().to_string();
        assert!(!pty.contains("--list"), "{pty}");
    }
}
