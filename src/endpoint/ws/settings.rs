//! The settings of `ws://` and `ws-listen://`, and their parsers.

use std::time::Duration;

use super::http;
use crate::endpoint::contract::Place;
use crate::endpoint::listen::{self, Listen};
use crate::endpoint::settings::{LONGEST_WAIT, address_and_settings};
use crate::endpoint::tls::settings::{self as tls, REPEATABLE, Settings, Side};

/// How often an idle connection is pinged unless `keepalive=` says.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// Clients (browser tabs) a `ws-listen://` endpoint serves at once unless
/// `--max-clients` says: enough that a reload is never refused while the old socket
/// is still closing.
pub const DEFAULT_WS_CLIENTS: usize = 16;

/// Lines a `ws-listen://` endpoint keeps for a page that opens later, unless
/// `history=` says: a screenful or two of a chatty board, at most
/// [`crate::endpoint::listen::HISTORY_BYTES`].
pub const DEFAULT_HISTORY: usize = 1000;

/// The most lines `history=` may keep.
const MOST_HISTORY: usize = 100_000;

/// A `ws://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `HOST:PORT`.
    pub addr: String,
    /// The path and query asked for (`/` if none).
    pub path: String,
    /// Ping period.
    pub keepalive: Duration,
    /// TLS settings, for `wss://`.
    pub tls: Option<Settings>,
}

/// A `ws-listen://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// Where to listen.
    pub listen: Listen,
    /// The token clients must present, if any.
    pub token: Option<Vec<u8>>,
    /// Origins allowed besides the page's own.
    pub origins: Vec<String>,
    /// Ping period.
    pub keepalive: Duration,
    /// Lines kept for a page that opens later (`history=`).
    pub history: usize,
}

impl Connect {
    /// The name used in messages: the URL without its query, which may hold a token.
    pub fn name(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("/");
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}",
            self.addr,
            if path == "/" { "" } else { path }
        )
    }
}

impl Serve {
    /// The name used in messages: where it listens, without its settings.
    pub fn name(&self) -> String {
        let scheme = if self.listen.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}-listen://{}", self.listen.addr)
    }

    /// Where it is: port 0 is a new port each time.
    pub fn place(&self) -> Place {
        self.listen.place()
    }
}

/// Parses `keepalive=SECS`.
fn keepalive(value: &str) -> Result<Duration, String> {
    let most = LONGEST_WAIT.as_secs();
    match value.parse::<u64>() {
        Ok(secs) if (1..=most).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("keepalive is in seconds, from 1 to {most} (a day)")),
    }
}

/// Parses what follows `ws://`.
pub fn parse_connect(text: &str, rest: &str) -> Result<Connect, String> {
    connect(text, rest, None)
}

/// Parses what follows `wss://`.
pub fn parse_connect_tls(text: &str, rest: &str) -> Result<Connect, String> {
    connect(text, &tls::flags(rest), Some(Settings::new(Side::Client)))
}

fn connect(text: &str, rest: &str, mut tls: Option<Settings>) -> Result<Connect, String> {
    let mut period = DEFAULT_KEEPALIVE;
    let known = match tls {
        Some(_) => format!("keepalive, {}", tls::CLIENT_KEYS),
        None => "keepalive".to_string(),
    };
    let url = address_and_settings(text, rest, &known, REPEATABLE, |key, value| match key {
        "keepalive" => keepalive(value).map(|k| period = k).map(|_| true),
        _ => match &mut tls {
            Some(tls) => tls.take(key, value),
            None => Ok(false),
        },
    })?;
    let (scheme, default_port) = match tls {
        Some(_) => ("wss", 443),
        None => ("ws", 80),
    };
    let (addr, path) = match url.find('/') {
        Some(at) => (&url[..at], &url[at..]),
        None => (url, "/"),
    };
    let has_port = match addr.rfind(']') {
        Some(end) => addr[end..].contains(':'),
        None => addr.contains(':'),
    };
    let host = match has_port {
        true => addr.rsplit_once(':').map_or("", |(host, _)| host),
        false => addr,
    };
    if host.is_empty() {
        return Err(format!(
            "{text}: missing host, e.g. {scheme}://192.168.1.20:8080"
        ));
    }
    let addr = match has_port {
        true => {
            let port = addr.rsplit_once(':').map_or("", |(_, port)| port);
            port.parse::<u16>()
                .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
            addr.to_string()
        }
        false => format!("{addr}:{default_port}"),
    };
    if let Some(tls) = &tls {
        tls.check(text)?;
    }
    Ok(Connect {
        addr,
        path: path.to_string(),
        keepalive: period,
        tls,
    })
}

/// Parses what follows `ws-listen://`.
pub fn parse_serve(text: &str, rest: &str) -> Result<Serve, String> {
    serve(text, rest, false)
}

/// Parses what follows `wss-listen://`.
pub fn parse_serve_tls(text: &str, rest: &str) -> Result<Serve, String> {
    serve(text, rest, true)
}

fn serve(text: &str, rest: &str, secure: bool) -> Result<Serve, String> {
    let (mut token, mut origins, mut period) = (None, Vec::new(), DEFAULT_KEEPALIVE);
    let mut history = DEFAULT_HISTORY;
    let own = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "token" if value.is_empty() => return Err("the token is empty".into()),
            // Compared with the request's, which a browser may have %-encoded.
            "token" => match http::percent_decode(value) {
                Some(bytes) => token = Some(bytes),
                None => {
                    return Err("a % in the token must start a %XX escape (%25 for %)".into());
                }
            },
            "origin" if value != "*" && !value.contains("://") => {
                return Err(
                    "an origin is a scheme and host, e.g. origin=https://dash.example".into(),
                );
            }
            "origin" => origins.push(value.trim_end_matches('/').to_string()),
            "keepalive" => period = keepalive(value)?,
            "history" => {
                history = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= MOST_HISTORY)
                    .ok_or(format!(
                        "history is the lines kept for a page opened later, from 0 (none) \
                         to {MOST_HISTORY}"
                    ))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let listen = match secure {
        true => {
            let known = format!("token, origin, keepalive, history, {}", tls::SERVER_KEYS);
            listen::parse_tls(text, rest, &known, &["origin"], own)?
        }
        false => {
            let addr = address_and_settings(
                text,
                rest,
                "token, origin, keepalive, history",
                &["origin"],
                own,
            )?;
            listen::parse(text, addr)?
        }
    };
    Ok(Serve {
        listen,
        token,
        origins,
        keepalive: period,
        history,
    })
}
