//! The registry: which argument becomes which kind. One line per scheme in
//! [`SCHEMES`]; the forms without a scheme (`-`, `pty`, a port path) follow in
//! [`parse`]. A new kind adds its line here and nothing else outside its own room.

use std::sync::Arc;

use super::contract::Kind;
use super::{listen, mqtt, pty, serial, stdio, tcp, ws};

/// What parses the part of an argument after `SCHEME://`: the whole argument (for
/// messages), then the rest.
pub type Parse = fn(&str, &str) -> Result<Arc<dyn Kind>, String>;

/// One scheme: `NAME://...`.
pub struct Scheme {
    /// What comes before `://`.
    pub name: &'static str,
    /// How to write it, for the message about an unknown scheme; `None` leaves it out
    /// of that list (an alias, or a scheme not supported yet).
    pub usage: Option<&'static str>,
    /// Its parser.
    pub parse: Parse,
}

/// Every scheme, in the order the unknown-scheme message lists them.
pub const SCHEMES: &[Scheme] = &[
    scheme("tcp", Some("tcp://HOST:PORT"), |t, r| {
        kind(tcp::parse(t, r))
    }),
    scheme("socket", None, |t, r| kind(tcp::parse(t, r))),
    scheme("tcp-listen", Some("tcp-listen://[ADDR:]PORT"), |t, r| {
        kind(listen::parse(t, r))
    }),
    scheme("ws", Some("ws://HOST:PORT[/PATH]"), |t, r| {
        kind(ws::parse_connect(t, r))
    }),
    scheme("ws-listen", Some("ws-listen://[ADDR:]PORT"), |t, r| {
        kind(ws::parse_serve(t, r))
    }),
    scheme("mqtt", Some("mqtt://HOST,pub=TOPIC,sub=FILTER"), |t, r| {
        kind(mqtt::parse(t, r))
    }),
    scheme("mqtts", None, |t, _| Err(format!("{t}: {}", mqtt::NO_TLS))),
    scheme("wss", None, |t, _| Err(format!("{t}: {}", ws::NO_TLS))),
];

/// Parses a positional argument into its kind. The error says what is wrong with it.
pub fn parse(text: &str) -> Result<Arc<dyn Kind>, String> {
    if text == "-" {
        return Ok(Arc::new(stdio::Stdio));
    }
    if text == "pty" || text.starts_with("pty:") {
        return kind(pty::parse(text));
    }
    if let Some((name, rest)) = text.split_once("://") {
        return match SCHEMES.iter().find(|scheme| scheme.name == name) {
            Some(scheme) => (scheme.parse)(text, rest),
            None => Err(unknown(text, name)),
        };
    }
    kind(text.parse::<serial::Settings>())
}

/// The message about a scheme nobody registered: every form there is.
fn unknown(text: &str, name: &str) -> String {
    let forms: Vec<&str> = SCHEMES.iter().filter_map(|scheme| scheme.usage).collect();
    format!(
        "{text}: unknown scheme '{name}://'; use {}, -, pty, usb:VID:PID, or a serial port path",
        forms.join(", ")
    )
}

const fn scheme(name: &'static str, usage: Option<&'static str>, parse: Parse) -> Scheme {
    Scheme { name, usage, parse }
}

fn kind<K: Kind>(parsed: Result<K, String>) -> Result<Arc<dyn Kind>, String> {
    parsed.map(|kind| Arc::new(kind) as Arc<dyn Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_scheme_message_lists_every_form() {
        assert_eq!(
            parse("ftp://host:1").unwrap_err(),
            "ftp://host:1: unknown scheme 'ftp://'; use tcp://HOST:PORT, \
             tcp-listen://[ADDR:]PORT, ws://HOST:PORT[/PATH], ws-listen://[ADDR:]PORT, \
             mqtt://HOST,pub=TOPIC,sub=FILTER, -, pty, usb:VID:PID, or a serial port path"
        );
    }

    #[test]
    fn each_scheme_is_registered_once() {
        for (i, scheme) in SCHEMES.iter().enumerate() {
            assert!(
                SCHEMES[i + 1..].iter().all(|s| s.name != scheme.name),
                "{}",
                scheme.name
            );
        }
    }
}
