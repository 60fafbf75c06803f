//! `mqtt://[USER@]HOST[:PORT],key=value,...`: parsing and checking an MQTT endpoint's
//! settings, all at parse time (a bad one is exit 2), and its stable default client id.
//!
//! Topics and filters are checked as MQTT 3.1.1 defines them. A `sub` filter that
//! matches the `pub` topic (or the `status` topic) is refused: the broker would send
//! every line straight back. A password never appears on the command line, where `ps`
//! shows it: `USER:PASSWORD@` is refused with a pointer to `password-file=`.

use std::fmt;

use crate::endpoint::settings::{each_setting, hostname};
use crate::endpoint::tls::settings::{self as tls, Side};

/// The port MQTT brokers listen on without TLS.
pub const DEFAULT_PORT: u16 = 1883;

/// The port MQTT brokers listen on with TLS.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// Seconds between packets before the broker may drop the connection, and how often
/// an idle connection pings it: what mosquitto_pub and paho use by default is 60; a
/// shorter default notices a dead broker sooner, at one ping per 30 s.
pub const DEFAULT_KEEPALIVE: u16 = 30;

/// The longest client id every MQTT 3.1.1 broker must accept.
const GUARANTEED_ID: usize = 23;

/// The settings a spec may carry, for messages.
const KEYS: &str = "pub, sub, qos, retain, client-id, keepalive, password-file, status";

/// An MQTT endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The broker's host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// User name, if the broker wants one.
    pub user: Option<String>,
    /// Where lines from the other side are published.
    pub publish: Option<String>,
    /// Messages on this filter are lines for the other side.
    pub subscribe: Option<String>,
    /// 0 (at most once) or 1 (at least once, persistent session).
    pub qos: u8,
    /// Whether published lines are retained.
    pub retain: bool,
    /// The client id: as given, or derived from the host and the endpoint.
    pub client_id: String,
    /// Keepalive in seconds, 1 to 65535.
    pub keepalive: u16,
    /// A file holding the password, read at each connect.
    pub password_file: Option<String>,
    /// Where `online` and (as the will, and at a clean stop) `offline` are retained.
    pub status: Option<String>,
    /// TLS settings, for `mqtts://`.
    pub tls: Option<tls::Settings>,
}

impl Settings {
    /// `HOST:PORT` for connecting, with an IPv6 address in brackets.
    pub fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    /// Whether `other` names the same broker: the same port and host, where
    /// `localhost` and the loopback addresses are one host (this machine).
    pub fn same_broker(&self, other: &Settings) -> bool {
        let host = |s: &Settings| {
            let host = s.host.to_ascii_lowercase();
            let ip = host.parse::<std::net::IpAddr>();
            match host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback()) {
                true => "this machine".to_string(),
                false => host,
            }
        };
        self.port == other.port && host(self) == host(other)
    }
}

impl fmt::Display for Settings {
    /// `mqtt://[USER@]HOST:PORT` with its topics: the endpoint's name in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.tls {
            Some(_) => "mqtts://",
            None => "mqtt://",
        })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        f.write_str(&self.address())?;
        if let Some(topic) = &self.publish {
            write!(f, ",pub={topic}")?;
        }
        if let Some(filter) = &self.subscribe {
            write!(f, ",sub={filter}")?;
        }
        Ok(())
    }
}

/// Parses `rest`, what follows `mqtt://` in the argument `text`.
pub fn parse(text: &str, rest: &str) -> Result<Settings, String> {
    parse_with(text, rest, None)
}

/// Parses `rest`, what follows `mqtts://` in the argument `text`.
pub fn parse_tls(text: &str, rest: &str) -> Result<Settings, String> {
    parse_with(
        text,
        &tls::flags(rest),
        Some(tls::Settings::new(Side::Client)),
    )
}

fn parse_with(text: &str, rest: &str, tls: Option<tls::Settings>) -> Result<Settings, String> {
    let mut parts = rest.split(',');
    let authority = parts.next().unwrap_or_default();
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            return Err(format!(
                "{text}: never put a password on the command line, where `ps` shows it; \
                 put it in a file and add password-file=PATH"
            ));
        }
        Some(("", _)) => return Err(format!("{text}: missing user name before '@'")),
        Some((user, _)) if user.len() > usize::from(u16::MAX) => {
            return Err(format!("{text}: a user name is at most 65535 bytes"));
        }
        Some((user, hostport)) => (Some(user.to_string()), hostport),
        None => (None, authority),
    };
    let default_port = match tls {
        Some(_) => DEFAULT_TLS_PORT,
        None => DEFAULT_PORT,
    };
    let (host, port) = host_port(text, hostport, default_port)?;
    let mut s = Settings {
        host,
        port,
        user,
        publish: None,
        subscribe: None,
        qos: 0,
        retain: false,
        client_id: String::new(),
        keepalive: DEFAULT_KEEPALIVE,
        password_file: None,
        status: None,
        tls,
    };
    let mut client_id = None;
    let mut retain_given = false;
    let keys = match s.tls {
        Some(_) => format!("{KEYS}, {}", tls::CLIENT_KEYS),
        None => KEYS.to_string(),
    };
    each_setting(text, parts, &keys, tls::REPEATABLE, |key, value| {
        match key {
            "pub" => s.publish = Some(topic(value)?),
            "sub" => s.subscribe = Some(filter(value)?),
            "status" => s.status = Some(topic(value)?),
            "qos" => {
                s.qos = match value {
                    "0" => 0,
                    "1" => 1,
                    "2" => {
                        return Err("QoS 2 is not supported; use qos=1 (duplicates are possible, losses are not)".to_string());
                    }
                    _ => return Err("qos must be 0 or 1".to_string()),
                }
            }
            "retain" => {
                retain_given = true;
                s.retain = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err("retain must be on or off".to_string()),
                }
            }
            "client-id" => {
                if value.is_empty() || value.len() > usize::from(u16::MAX) || value.contains('\0') {
                    return Err("a client id is 1 to 65535 bytes, without NUL".to_string());
                }
                client_id = Some(value.to_string());
            }
            "keepalive" => match value.parse::<u16>() {
                Ok(secs) if secs > 0 => s.keepalive = secs,
                _ => return Err("keepalive must be 1 to 65535 seconds".to_string()),
            },
            "password-file" => {
                if value.is_empty() {
                    return Err("password-file needs a path".to_string());
                }
                s.password_file = Some(value.to_string());
            }
            _ => {
                return match &mut s.tls {
                    Some(tls) => tls.take(key, value),
                    None => Ok(false),
                };
            }
        }
        Ok(true)
    })?;
    if let Some(tls) = &s.tls {
        tls.check(text)?;
    }
    check(text, &s, retain_given)?;
    s.client_id = match client_id {
        Some(id) => id,
        None => default_client_id(&hostname(), &s),
    };
    debug_assert!(s.client_id.len() <= GUARANTEED_ID);
    Ok(s)
}

/// Splits `HOST[:PORT]`; an IPv6 address goes in brackets.
fn host_port(text: &str, hostport: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(format!("{text}: missing ']' after the IPv6 address"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{text}: expected ':PORT' after ']'")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "{text}: put an IPv6 address in brackets, e.g. mqtt://[::1]:1883"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "{text}: missing broker host, e.g. mqtt://broker.local or mqtt://10.0.0.5:1883"
        ));
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("{text}: port must be a number from 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

/// Checks that the settings make sense together.
fn check(text: &str, s: &Settings, retain_given: bool) -> Result<(), String> {
    let (publish, subscribe) = (s.publish.as_deref(), s.subscribe.as_deref());
    if publish.is_none() && subscribe.is_none() {
        return Err(format!(
            "{text}: say where lines go and come from: pub=TOPIC, sub=FILTER, or both"
        ));
    }
    if retain_given && publish.is_none() {
        return Err(format!(
            "{text}: retain= applies to published lines; add pub=TOPIC"
        ));
    }
    if s.password_file.is_some() && s.user.is_none() {
        return Err(format!(
            "{text}: a password needs a user name: mqtt://USER@HOST,password-file=PATH"
        ));
    }
    if let Some(filter) = subscribe {
        if let Some(topic) = publish.filter(|topic| matches(filter, topic)) {
            return Err(format!(
                "{text}: sub={filter} matches pub={topic}, so every line would come straight \
                 back; subscribe to the other side's topic only (e.g. pub=lab/uno1,sub=lab/uno2)"
            ));
        }
        if let Some(status) = s.status.as_deref().filter(|topic| matches(filter, topic)) {
            return Err(format!(
                "{text}: sub={filter} matches status={status}, so this bridge's own status \
                 would come back as lines; put the status topic elsewhere"
            ));
        }
    }
    if s.status.is_some() && s.status.as_deref() == publish {
        return Err(format!(
            "{text}: status= and pub= must differ, or status words would mix with lines"
        ));
    }
    Ok(())
}

/// Checks a topic name to publish on: no wildcards, no NUL, 1 to 65535 bytes.
fn topic(value: &str) -> Result<String, String> {
    if value.contains(['+', '#']) {
        return Err("a topic to publish on cannot hold the wildcards + or #".into());
    }
    common(value)?;
    Ok(value.to_string())
}

/// Checks a topic filter: `+` stands alone in its level, `#` alone in the last one.
fn filter(value: &str) -> Result<String, String> {
    common(value)?;
    let levels: Vec<&str> = value.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level, as in lab/+/out".into());
        }
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("'#' must be the whole last level, as in lab/#".into());
        }
    }
    Ok(value.to_string())
}

/// What topics and filters share: 1 to 65535 bytes, no NUL, no comma (settings are
/// comma-separated).
fn common(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("a topic cannot be empty".into());
    }
    if value.len() > usize::from(u16::MAX) {
        return Err("a topic is at most 65535 bytes".into());
    }
    if value.contains('\0') {
        return Err("a topic cannot hold NUL".into());
    }
    // MQTT 3.1.1, 1.5.3: brokers drop a connection that sends these.
    if let Some(c) = value.chars().find(|&c| c.is_control() || noncharacter(c)) {
        return Err(format!(
            "a topic cannot hold U+{:04X}: no control characters (U+0001-U+001F, \
             U+007F-U+009F) or Unicode noncharacters, which brokers refuse",
            u32::from(c)
        ));
    }
    Ok(())
}

/// A Unicode noncharacter: U+FDD0 to U+FDEF, and the last two code points of each plane.
fn noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Whether `filter` matches `topic`, as a broker decides (MQTT 3.1.1, 4.7). Wildcards at
/// the first level do not match topics starting with `$` (`$SYS/...`).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic = topic.split('/');
    for level in filter.split('/') {
        match (level, topic.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (level, Some(name)) if level == name => {}
            _ => return false,
        }
    }
    topic.next().is_none()
}

/// `sb` and 16 hex digits of an FNV-1a hash of the host name and the endpoint: the same
/// across restarts (a persistent session finds its messages), different for different
/// machines and topics, 18 bytes of `[0-9a-z]`, which every broker must accept.
fn default_client_id(hostname: &str, s: &Settings) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in hostname.bytes().chain([0]).chain(s.to_string().bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("sb{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> Settings {
        parse(&format!("mqtt://{rest}"), rest).unwrap()
    }

    fn err(rest: &str) -> String {
        parse(&format!("mqtt://{rest}"), rest).unwrap_err()
    }

    #[test]
    fn defaults_and_display() {
        let s = ok("broker,pub=lab/uno1,sub=lab/uno2");
        assert_eq!((s.host.as_str(), s.port), ("broker", DEFAULT_PORT));
        assert_eq!(
            (s.qos, s.retain, s.keepalive),
            (0, false, DEFAULT_KEEPALIVE)
        );
        assert_eq!(
            s.to_string(),
            "mqtt://broker:1883,pub=lab/uno1,sub=lab/uno2"
        );
        let s = ok("me@[::1]:1884,sub=a/#,qos=1,keepalive=65535,client-id=x,password-file=/p");
        assert_eq!(s.host, "::1");
        assert_eq!(s.address(), "[::1]:1884");
        assert_eq!(s.to_string(), "mqtt://me@[::1]:1884,sub=a/#");
        assert_eq!((s.qos, s.keepalive), (1, 65535));
        assert_eq!(s.client_id, "x");
        assert_eq!(s.password_file.as_deref(), Some("/p"));
    }

    #[test]
    fn this_machine_is_one_broker_however_it_is_named() {
        let local = ok("localhost:1884,sub=a");
        let broker = |host: &str| ok(&format!("{host},pub=b"));
        for same in ["127.0.0.1:1884", "[::1]:1884", "LOCALHOST:1884"] {
            assert!(local.same_broker(&broker(same)), "{same}");
        }
        for other in ["localhost", "broker:1884", "10.0.0.1:1884"] {
            assert!(!local.same_broker(&broker(other)), "{other}");
        }
        assert!(broker("Broker").same_broker(&broker("broker")));
    }

    #[test]
    fn the_default_client_id_is_short_stable_and_distinct() {
        let one = ok("broker,pub=lab/uno1,sub=lab/uno2");
        let again = ok("broker,pub=lab/uno1,sub=lab/uno2,qos=1");
        let other = ok("broker,pub=lab/uno2,sub=lab/uno1");
        assert_eq!(one.client_id, again.client_id);
        assert_ne!(one.client_id, other.client_id);
        assert!(one.client_id.len() <= GUARANTEED_ID);
        assert!(one.client_id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(
            default_client_id("host-a", &one),
            default_client_id("host-b", &one)
        );
    }

    #[test]
    fn bad_settings_say_why() {
        for (rest, why) in [
            ("broker", "pub=TOPIC, sub=FILTER, or both"),
            ("u:secret@broker,pub=a", "never put a password"),
            ("broker,pub=a\u{1}b", "cannot hold U+0001"),
            ("broker,sub=a/\u{7f}", "cannot hold U+007F"),
            ("broker,pub=x,status=s\u{9f}", "cannot hold U+009F"),
            ("broker,pub=a\u{fdd0}", "cannot hold U+FDD0"),
            ("broker,pub=a\u{1fffe}", "cannot hold U+1FFFE"),
            ("@broker,pub=a", "missing user name"),
            (
                &format!("{}@broker,pub=a", "u".repeat(65_536)),
                "at most 65535 bytes",
            ),
            (",pub=a", "missing broker host"),
            ("broker:0,pub=a", "port must be a number"),
            ("broker:x,pub=a", "port must be a number"),
            ("::1,pub=a", "brackets"),
            ("[::1,pub=a", "missing ']'"),
            ("broker,pub=a/+", "wildcards"),
            ("broker,pub=", "cannot be empty"),
            ("broker,sub=a/b#", "'#' must be the whole last level"),
            ("broker,sub=a/#/b", "'#' must be the whole last level"),
            ("broker,sub=a+/b", "'+' must be a whole level"),
            ("broker,pub=a,qos=2", "QoS 2 is not supported"),
            ("broker,pub=a,qos=x", "qos must be 0 or 1"),
            ("broker,pub=a,retain=yes", "on or off"),
            ("broker,sub=a,retain=on", "add pub=TOPIC"),
            ("broker,pub=a,keepalive=0", "1 to 65535"),
            ("broker,pub=a,keepalive=65536", "1 to 65535"),
            ("broker,pub=a,client-id=", "1 to 65535 bytes"),
            ("broker,pub=a,password-file=/p", "needs a user name"),
            ("broker,pub=a,pub=b", "given twice"),
            ("broker,pub=a,nope=1", "unknown setting"),
            ("broker,pub=a,flag", "expected key=value"),
            ("broker,pub=lab/uno1,sub=lab/#", "straight back"),
            ("broker,pub=lab/uno1,sub=+/uno1", "straight back"),
            ("broker,pub=a,sub=b/#,status=b/s", "own status"),
            ("broker,pub=a,status=a", "must differ"),
        ] {
            let error = err(rest);
            assert!(error.contains(why), "{rest}: {error}");
        }
    }

    #[test]
    fn filters_match_as_a_broker_does() {
        for (filter, topic, expected) in [
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+/c", "a/b/c", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+", "a", true),
            ("+/+", "/a", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a/b", "a/c", false),
        ] {
            assert_eq!(matches(filter, topic), expected, "{filter} {topic}");
        }
    }
}
