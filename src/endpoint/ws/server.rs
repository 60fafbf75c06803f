//! `ws-listen://[ADDR:]PORT`: the [`Server`] protocol of the listener in `listen/`:
//! the page, the handshake and its checks (token, origin, room).

use std::any::Any;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use log::{info, warn};

use super::frames::{CONSOLE, Conn};
use super::http;
use super::rules::Role;
use super::settings::{DEFAULT_WS_CLIENTS, Serve};
use crate::endpoint::contract::{Endpoint, Inbox, Inlet, Kind, Opening, Place};
use crate::endpoint::listen::{self, Earlier, History, Parcel, Protocol, Voice};
use crate::endpoint::settings::hostname;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Framing;

/// The page `ws-listen://` serves: one self-contained file, no outside assets but
/// the charting library below.
const PAGE: &str = include_str!("console.html");

/// What the page may load besides itself, by path: uPlot (MIT, its licence beside it
/// in vendor/uplot/), which the page loads when its plotter is first shown.
const FILES: [(&str, &str, &str); 2] = [
    (
        "/vendor/uPlot.iife.min.js",
        "text/javascript",
        include_str!("vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "/vendor/uPlot.min.css",
        "text/css",
        include_str!("vendor/uplot/uPlot.min.css"),
    ),
];

impl Kind for Serve {
    fn name(&self) -> String {
        Serve::name(self)
    }

    /// Binds the port; clients are taken once the bridge starts the endpoint.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let name = opening.name;
        let max = opening.defaults.max_clients.unwrap_or(DEFAULT_WS_CLIENTS);
        if self.token.is_none() && !self.listen.addr.ip().is_loopback() {
            warn!(
                "{name}: no token= and listening beyond this machine: anyone on the network \
                 can talk to the device (add ,token=SECRET)"
            );
        }
        let server = Server {
            name: name.to_string(),
            settings: self.clone(),
            framing: opening.defaults.framing.clone(),
            max_clients: max,
            device: None,
            host: hostname(),
        };
        listen::bind(name, &self.listen, max, server)
    }

    fn place(&self) -> Place {
        Serve::place(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The `ws-listen://` protocol: the page, the handshake and its checks.
struct Server {
    name: String,
    settings: Serve,
    framing: Framing,
    max_clients: usize,
    /// The endpoint across the bridge, which the page names.
    device: Option<String>,
    /// This machine's name, which the page names too.
    host: String,
}

impl Server {
    /// Whether a browser's `origin` may talk to the device: its own page's, or one the
    /// user allowed.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .settings
            .origins
            .iter()
            .any(|o| o == "*" || o == origin)
        {
            return true;
        }
        let Some(host) = host else { return false };
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(host);
        // A page's own origin is only as good as its Host, which a DNS rebinding page
        // chooses: without a token, take it only for an address or localhost.
        own && (self.settings.token.is_some() || plain_host(host))
    }

    /// Why the page about to be served, asked for by `request`, would be refused its
    /// WebSocket, in words for its reader; `None` when it will be served.
    fn refusal(&self, request: &http::Request) -> Option<String> {
        if let Some(token) = &self.settings.token
            && request.token.as_deref() != Some(token.as_slice())
        {
            return Some(
                "This bridge takes only pages opened with its token: open the address it \
                 logged when it started (it ends in ?token=...)."
                    .into(),
            );
        }
        let host = request.host.as_deref()?;
        let scheme = self.scheme();
        if self.origin_allowed(&format!("{scheme}://{host}"), Some(host)) {
            return None;
        }
        let port = host.rsplit_once(':').map_or("", |(_, port)| port);
        let port = match port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
            true => format!(":{port}"),
            false => String::new(),
        };
        Some(format!(
            "This page was opened as {scheme}://{host}/. Without a token the bridge takes \
             WebSocket connections only from pages opened by address or as localhost, so that \
             no web site can reach the device through a name it controls (DNS rebinding). Open \
             {scheme}://localhost{port}/ on this machine, or start the bridge with token=SECRET \
             (then open /?token=SECRET) or origin={scheme}://{host}."
        ))
    }

    /// The page's scheme: https over TLS.
    fn scheme(&self) -> &'static str {
        match self.settings.listen.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// The console page for `request`: named after the device and this machine, so
    /// that two tabs for two boards differ, and with a note in place of a connection
    /// that would be refused (see [`Server::refusal`]).
    fn page(&self, request: &http::Request) -> String {
        let mut body = String::from("<body");
        let mut title = String::new();
        let mut attribute = |name: &str, value: &str| {
            body.push_str(&format!(" data-{name}=\"{}\"", http::html_escape(value)));
        };
        if let Some(device) = &self.device {
            attribute("device", device);
            title.push_str(device);
        }
        if !self.host.is_empty() {
            attribute("host", &self.host);
            title.push_str(if title.is_empty() { "" } else { " on " });
            title.push_str(&self.host);
        }
        if let Some(why) = self.refusal(request) {
            attribute("refused", &why);
        }
        body.push('>');
        title.push_str(if title.is_empty() { "" } else { " \u{b7} " });
        title = format!("<title>{}serial-bridge</title>", http::html_escape(&title));
        PAGE.replacen("<title>serial-bridge console</title>", &title, 1)
            .replacen("<body>", &body, 1)
    }
}

/// Whether `host` (with its port) is an IP address or localhost, not a name that any
/// DNS server could point at this machine.
fn plain_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

impl Protocol for Server {
    type Conn = Conn;

    /// Logs the page's address, ready to open: on this machine when it listens on
    /// every interface, with the token when one is set.
    fn bound(&self, name: &str, local: SocketAddr) {
        let host = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let query = match &self.settings.token {
            Some(token) => format!("?token={}", http::percent_encode(token)),
            None => String::new(),
        };
        let scheme = self.scheme();
        let url = format!("{scheme}://{}/{query}", SocketAddr::new(host, local.port()));
        let others = match local.ip().is_unspecified() {
            true => " (other machines: this machine's address instead of the loopback one)",
            false => "",
        };
        info!("{name}: open {url} in a browser{others}");
    }

    fn greet(
        &self,
        stream: &mut Wire,
        peer: SocketAddr,
        room: &mut dyn FnMut() -> bool,
    ) -> io::Result<Option<Conn>> {
        let name = &self.name;
        let request = match http::read_request(stream) {
            Ok(Some(request)) => request,
            Ok(None) => {
                http::answer(stream, "400 Bad Request", "not an HTTP request\n", "")?;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = http::answer(
                    stream,
                    "431 Request Header Fields Too Large",
                    "too large\n",
                    "",
                );
                return Err(e);
            }
            Err(e) => {
                let _ = http::answer(stream, "408 Request Timeout", "no request in time\n", "");
                return Err(e);
            }
        };
        if !request.upgrade {
            return match (request.method.as_str(), request.path.as_str()) {
                ("GET" | "HEAD", "/" | "/index.html") => {
                    let page = self.page(&request);
                    http::page(stream, "text/html", &page, request.method == "GET").map(|_| None)
                }
                ("GET" | "HEAD", path) => match FILES.iter().find(|(at, ..)| *at == path) {
                    Some((_, kind, content)) => {
                        http::page(stream, kind, content, request.method == "GET").map(|_| None)
                    }
                    None => http::answer(stream, "404 Not Found", "not found\n", "").map(|_| None),
                },
                _ => http::answer(
                    stream,
                    "405 Method Not Allowed",
                    "only GET\n",
                    "Allow: GET\r\n",
                )
                .map(|_| None),
            };
        }
        let refuse = |stream: &mut Wire, status: &str, why: &str| {
            info!("{name}: refused {peer}: {why} ({status})");
            http::answer(stream, status, &format!("{why}\n"), "").map(|_| None)
        };
        let Some(key) = request
            .key
            .as_deref()
            .filter(|key| request.method == "GET" && !key.is_empty())
        else {
            return refuse(stream, "400 Bad Request", "not a WebSocket request");
        };
        if request.version.as_deref() != Some("13") {
            let extra = "Sec-WebSocket-Version: 13\r\n";
            info!("{name}: refused {peer}: WebSocket version is not 13 (426)");
            return http::answer(
                stream,
                "426 Upgrade Required",
                "WebSocket version 13 only\n",
                extra,
            )
            .map(|_| None);
        }
        if let Some(token) = &self.settings.token
            && request.token.as_deref() != Some(token.as_slice())
        {
            return refuse(stream, "401 Unauthorized", "wrong or missing token");
        }
        if let Some(origin) = &request.origin
            && !self.origin_allowed(origin, request.host.as_deref())
        {
            let why = format!("origin {origin} is not allowed (see origin=)");
            return refuse(stream, "403 Forbidden", &why);
        }
        if !room() {
            let why = format!("already serving {} (see --max-clients)", self.max_clients);
            return refuse(stream, "503 Service Unavailable", &why);
        }
        // The console page asks for its own subprotocol; other clients get lines as
        // messages, as before.
        let console = request.protocols.iter().any(|p| p == CONSOLE);
        http::switch(stream, key, console.then_some(CONSOLE))?;
        let peer = format!("{name} client {peer}");
        let conn = Conn::new(
            Role::Server,
            peer,
            &self.framing,
            self.settings.keepalive,
            stream,
        )?;
        Ok(Some(match console {
            true => conn.speaking_console(),
            false => conn,
        }))
    }

    /// A WebSocket client that stopped sending is gone: it closed the connection (its
    /// answer is sent by now) or vanished without a closing frame, and reads nothing
    /// more either. It leaves the list at once, so lines from then on count as reaching
    /// nobody rather than as forwarded.
    fn read(&self, conn: &Conn, stream: Wire, inlet: &mut dyn Inlet) -> io::Result<()> {
        conn.read(stream, inlet)?;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "closed the connection",
        ))
    }

    fn history(&self) -> History {
        let delimiter = match &self.framing {
            Framing::Lines { delimiter, .. } => Some(delimiter.as_slice()),
            Framing::Raw => None,
        };
        History::new(self.settings.history, delimiter)
    }

    /// Straight writes, in the frames its writer would write, for every client but a
    /// console page: its writer sends the hello and the history first, while the page
    /// is already in the list, and a line written straight could pass them. (It could
    /// have them once its greeting is out; a page's few clients do not need it.)
    fn voice(&self, conn: &Arc<Conn>) -> Option<Arc<dyn Voice>> {
        match conn.speaks_console() {
            true => None,
            false => Some(Arc::clone(conn) as Arc<dyn Voice>),
        }
    }

    fn linked(&mut self, across: &dyn Inbox) {
        self.device = across.across();
    }

    fn write(
        &self,
        conn: &Conn,
        stream: Wire,
        earlier: Earlier,
        queue: Receiver<Parcel>,
    ) -> io::Result<()> {
        conn.write(stream, earlier, queue)
    }
}
