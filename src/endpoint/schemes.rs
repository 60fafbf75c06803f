//! The registry: which argument becomes which kind. One line per scheme in
//! [`SCHEMES`]; the forms without a scheme (`-`, `pty`, a port path) follow in
//! [`parse`]. A new kind adds its line here and nothing else outside its own room.

use std::sync::Arc;

use super::contract::Kind;
use super::{listen, mqtt, pty, rfc2217, serial, stdio, tcp, udp, ws};

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
    /// What it is and its settings, for `--help`.
    pub about: &'static str,
    /// Its parser.
    pub parse: Parse,
}

/// Every scheme, in the order the unknown-scheme message lists them.
pub const SCHEMES: &[Scheme] = &[
    scheme(
        "tcp",
        Some("tcp://HOST:PORT"),
        "a TCP client (also socket://HOST:PORT)",
        |t, r| kind(tcp::parse(t, r)),
    ),
    scheme("socket", None, "", |t, r| kind(tcp::parse(t, r))),
    scheme(
        "tls",
        Some("tls://HOST:PORT"),
        "a TLS client, a byte stream as tcp://; ca=FILE, cert=FILE, key=FILE, sni=NAME, \
         alpn=PROTO, insecure (no verification: tests only)",
        |t, r| kind(tcp::parse_tls(t, r)),
    ),
    scheme(
        "tcp-listen",
        Some("tcp-listen://[ADDR:]PORT"),
        "a TCP server for line clients, on 127.0.0.1 unless ADDR says",
        |t, r| kind(listen::parse(t, r)),
    ),
    scheme(
        "tls-listen",
        Some("tls-listen://[ADDR:]PORT,cert=FILE,key=FILE"),
        "a TLS server for line clients, as tcp-listen://; client-ca=FILE (clients must \
         show a certificate it signed), alpn=PROTO",
        |t, r| kind(listen::parse_tls_lines(t, r)),
    ),
    scheme(
        "ws",
        Some("ws://HOST:PORT[/PATH]"),
        "a WebSocket client, one message per line; keepalive=SECS",
        |t, r| kind(ws::parse_connect(t, r)),
    ),
    scheme(
        "ws-listen",
        Some("ws-listen://[ADDR:]PORT"),
        "a WebSocket server and a console page for browsers; token=SECRET, \
         origin=URL (more than once), keepalive=SECS, history=LINES",
        |t, r| kind(ws::parse_serve(t, r)),
    ),
    scheme(
        "wss",
        Some("wss://HOST[:PORT][/PATH]"),
        "a WebSocket client over TLS (port 443 unless given); TLS settings as tls://",
        |t, r| kind(ws::parse_connect_tls(t, r)),
    ),
    scheme(
        "wss-listen",
        Some("wss-listen://[ADDR:]PORT,cert=FILE,key=FILE"),
        "ws-listen:// over TLS: the console page over https; client-ca=FILE",
        |t, r| kind(ws::parse_serve_tls(t, r)),
    ),
    scheme(
        "mqtt",
        Some("mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER"),
        "an MQTT client, one message per line; qos=0|1, retain=on|off, client-id=ID, \
         keepalive=SECS, password-file=PATH, status=TOPIC",
        |t, r| kind(mqtt::parse(t, r)),
    ),
    scheme(
        "mqtts",
        Some("mqtts://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER"),
        "MQTT over TLS (port 8883 unless given); mqtt://'s settings and tls://'s",
        |t, r| kind(mqtt::parse_tls(t, r)),
    ),
    scheme(
        "udp",
        Some("udp://HOST:PORT"),
        "UDP, one datagram per line; bind=[ADDR:]PORT, broadcast=on|off, ttl=N",
        |t, r| kind(udp::parse(t, r)),
    ),
    scheme(
        "udp-listen",
        Some("udp-listen://[ADDR:]PORT"),
        "UDP from anyone, lines to the peers heard from; group=GROUP, reply=HOST:PORT, \
         timeout=SECS",
        |t, r| kind(udp::parse_listen(t, r)),
    ),
    scheme(
        "rfc2217",
        Some("rfc2217://HOST:PORT"),
        "a remote serial port (RFC 2217: ser2net, an ESP's server); a serial port's \
         settings, sent at connect and checked; over TLS with tls=on or tls://'s settings",
        |t, r| kind(rfc2217::parse(t, r)),
    ),
    scheme(
        "rfc2217-listen",
        Some("rfc2217-listen://[ADDR:]PORT"),
        "the serial port across served as a remote port (RFC 2217: esptool, pyserial, \
         labgrid), bytes as they come; reset=pass|esp|none, allow=ADDR[/BITS] (more than \
         once); over TLS with cert=FILE,key=FILE",
        |t, r| kind(rfc2217::parse_listen(t, r)),
    ),
];

/// The forms without a scheme, for `--help`: how to write each, and what it is.
const FORMS: &[(&str, &str)] = &[
    (
        "PATH[,KEY=VALUE]...",
        "a serial port (/dev/ttyACM0, COM3); baud=N (else --baud), data=5-8, \
         parity=none|odd|even, stop=1|2, flow=none|software|hardware (default 8N1, no \
         flow control), dtr=on|off, rts=on|off, hupcl=on|off, settle=MS",
    ),
    (
        "usb:VID:PID[:SERIAL][,KEY=VALUE]...",
        "the USB serial device so named, wherever it is plugged in (--list shows \
         each one's); a serial port's settings",
    ),
];

/// The last forms, after the schemes.
const LAST_FORMS: &[(&str, &str)] = &[
    ("-", "stdin and stdout"),
    (
        "pty[:LINK]",
        "a new pseudo-terminal, with a symlink at LINK (Unix)",
    ),
];

/// The `Endpoints:` section of `--help`: every form, one per entry, with its settings,
/// laid out as argh lays out options.
pub fn help() -> String {
    let schemes = SCHEMES
        .iter()
        .filter_map(|scheme| Some((scheme.usage?, scheme.about)));
    let mut out = "\nEndpoints:\n".to_string();
    for (form, about) in FORMS
        .iter()
        .copied()
        .chain(schemes)
        .chain(LAST_FORMS.iter().copied())
    {
        out += &entry(form, about);
    }
    out
}

/// One entry: the form, then its text from column 20, wrapped at 80.
fn entry(form: &str, about: &str) -> String {
    const COLUMN: usize = 20;
    let mut out = format!("  {form}");
    let mut width = out.len();
    if width + 2 > COLUMN {
        out.push('\n');
        width = 0;
    }
    for word in about.split_whitespace() {
        if width > COLUMN && width + 1 + word.len() > 80 {
            out.push('\n');
            width = 0;
        }
        if width < COLUMN {
            out += &" ".repeat(COLUMN - width);
            width = COLUMN;
        } else {
            out.push(' ');
            width += 1;
        }
        out += word;
        width += word.len();
    }
    out + "\n"
}

/// Parses a positional argument into its kind. The error says what is wrong with it,
/// and never repeats a secret the argument holds: a password or a `token=` value.
pub fn parse(text: &str) -> Result<Arc<dyn Kind>, String> {
    parse_kind(text).map_err(|message| {
        secrets(text)
            .into_iter()
            .fold(message, |message, (shown, hidden)| {
                message.replace(&shown, &hidden)
            })
    })
}

/// What in an argument must never reach a message or a log, as it may appear there and
/// hidden: the password of `USER:PASSWORD@HOST` (`:PASSWORD@`) and every `token=`
/// value (`token=VALUE`).
fn secrets(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    // After `SCHEME://`, or socat's `SCHEME:`.
    let rest = match text.split_once("://") {
        Some((_, rest)) => rest,
        None => text.split_once(':').map_or(text, |(_, rest)| rest),
    };
    let authority = rest.split([',', '/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        found.push((format!(":{password}@"), ":***@".to_string()));
    }
    for (at, _) in text.match_indices("token=") {
        let value = &text[at + "token=".len()..];
        let value = value.split([',', '&', '#']).next().unwrap_or_default();
        if !value.is_empty() {
            found.push((format!("token={value}"), "token=***".to_string()));
        }
    }
    // Longest first, so that a secret holding another is hidden whole.
    found.sort_by_key(|(shown, _)| std::cmp::Reverse(shown.len()));
    found
}

fn parse_kind(text: &str) -> Result<Arc<dyn Kind>, String> {
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
    if let Some(hint) = not_a_path(text) {
        return Err(hint);
    }
    kind(text.parse::<serial::Settings>())
}

/// Whether `text` is socat's spelling of a scheme (`tcp-listen:5000`) or an address
/// without one (`localhost:5000`) rather than a port's path: then what to write instead.
fn not_a_path(text: &str) -> Option<String> {
    let head = text.split(',').next().unwrap_or_default();
    let (name, rest) = head.split_once(':')?;
    if SCHEMES.iter().any(|scheme| scheme.name == name) {
        let after = text.split_once(':').map_or("", |(_, after)| after);
        return Some(format!(
            "{text}: not a serial port; did you mean {name}://{after}?"
        ));
    }
    let host = !name.is_empty()
        && name != "usb"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port = !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit());
    (host && port).then(|| format!("{text}: not a serial port; did you mean tcp://{text}?"))
}

/// The message about a scheme nobody registered: every form there is.
fn unknown(text: &str, name: &str) -> String {
    let forms: Vec<&str> = SCHEMES.iter().filter_map(|scheme| scheme.usage).collect();
    format!(
        "{text}: unknown scheme '{name}://'; use {}, -, pty, usb:VID:PID, or a serial port path",
        forms.join(", ")
    )
}

const fn scheme(
    name: &'static str,
    usage: Option<&'static str>,
    about: &'static str,
    parse: Parse,
) -> Scheme {
    Scheme {
        name,
        usage,
        about,
        parse,
    }
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
            "ftp://host:1: unknown scheme 'ftp://'; use tcp://HOST:PORT, tls://HOST:PORT, \
             tcp-listen://[ADDR:]PORT, tls-listen://[ADDR:]PORT,cert=FILE,key=FILE, \
             ws://HOST:PORT[/PATH], ws-listen://[ADDR:]PORT, wss://HOST[:PORT][/PATH], \
             wss-listen://[ADDR:]PORT,cert=FILE,key=FILE, \
             mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER, \
             mqtts://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER, udp://HOST:PORT, \
             udp-listen://[ADDR:]PORT, rfc2217://HOST:PORT, rfc2217-listen://[ADDR:]PORT, -, \
             pty, usb:VID:PID, \
             or a serial port path"
        );
    }

    #[test]
    fn socat_spellings_and_bare_addresses_are_not_taken_for_paths() {
        for (text, hint) in [
            ("tcp-listen:5000", "did you mean tcp-listen://5000?"),
            ("tcp:host:5000", "did you mean tcp://host:5000?"),
            ("socket:host:5000", "did you mean socket://host:5000?"),
            (
                "ws-listen:8080,keepalive=5",
                "did you mean ws-listen://8080,keepalive=5?",
            ),
            ("localhost:5000", "did you mean tcp://localhost:5000?"),
            ("10.0.0.2:7", "did you mean tcp://10.0.0.2:7?"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error, format!("{text}: not a serial port; {hint}"));
        }
        for path in [
            "/dev/ttyACM0",
            "COM3",
            "usb:2341:0043",
            "./port:1",
            "ttyS0,baud=9600",
        ] {
            assert!(parse(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn no_message_repeats_a_secret() {
        for text in [
            "mqtt://me:hunter2@broker,pub=a",
            "mqtts://me:hunter2@broker,pub=a",
            "mqtt:me:hunter2@broker:1883",
            "ws-listen://8080,token=hunter2,token=x",
            "ws-listen://8080,token=hunter2,bogus=1",
            "ws://host:1/x?token=hunter2,keepalive=0",
            "ftp://me:hunter2@host",
        ] {
            let error = parse(text).unwrap_err();
            assert!(!error.contains("hunter2"), "{text}: {error}");
            assert!(error.contains("***"), "{text}: {error}");
        }
    }

    #[test]
    fn help_lists_every_form_one_per_entry_within_80_columns() {
        let text = help();
        for scheme in SCHEMES.iter().filter(|s| s.usage.is_some()) {
            assert!(
                text.contains(&format!("\n  {}", scheme.usage.unwrap())),
                "{text}"
            );
            assert!(!scheme.about.is_empty(), "{}", scheme.name);
        }
        for form in ["PATH[,KEY=VALUE]...", "usb:VID:PID", "-", "pty[:LINK]"] {
            assert!(text.contains(&format!("\n  {form}")), "{text}");
        }
        for setting in ["dtr=on|off", "hupcl=on|off", "settle=MS", "keepalive=SECS"] {
            assert!(text.contains(setting), "{setting}: {text}");
        }
        assert!(text.lines().all(|line| line.len() <= 80), "{text}");
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
