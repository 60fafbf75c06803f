//! WebSocket endpoints: `ws://HOST:PORT[/PATH]` connects as a client;
//! `ws-listen://[ADDR:]PORT` serves WebSocket clients, and its own console page to
//! browsers. Both are message endpoints: one message is one line ([`frames`]).
//!
//! A `ws-listen://` endpoint is the listener of `listen.rs` with the [`Server`]
//! protocol: a plain `GET /` gets the console page, an upgrade request on any path
//! becomes a client, anything else a short HTTP error. With `token=SECRET` a client
//! must ask with `?token=SECRET` (401 otherwise; browsers cannot set headers on a
//! WebSocket, so the page passes on its own URL's token). Browsers let any web page
//! open a WebSocket to `127.0.0.1`, so the `Origin` is checked: a request without one
//! (not a browser) or from the page this endpoint serves is taken; others get 403
//! unless allowed with `origin=URL`.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};
use log::{info, warn};
use tungstenite::protocol::frame::coding::CloseCode;

use super::listen::{self, Listen, Protocol};
use super::{Dropped, Inbox, Inlet, Messages, OpenOptions, Outbox, Running, SendNow, Shape, Taken};
use crate::framing::{Batch, Framing};

mod frames;
mod http;

use frames::{Conn, Role};

/// The page `ws-listen://` serves: one self-contained file, no outside assets.
const CONSOLE: &str = include_str!("console.html");

/// How often an idle connection is pinged unless `keepalive=` says.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// Clients (browser tabs) a `ws-listen://` endpoint serves at once unless
/// `--max-clients` says: enough that a reload is never refused while the old socket
/// is still closing.
pub const DEFAULT_WS_CLIENTS: usize = 16;

/// Batches waiting for a `ws://` connection's writer: a few reads' worth.
const SEND_QUEUE: usize = 16;

/// A `ws://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `HOST:PORT`.
    pub addr: String,
    /// The path and query asked for (`/` if none).
    pub path: String,
    /// Ping period.
    pub keepalive: Duration,
}

/// A `ws-listen://` endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// Where to listen.
    pub listen: Listen,
    /// The token clients must present, if any.
    pub token: Option<String>,
    /// Origins allowed besides the page's own.
    pub origins: Vec<String>,
    /// Ping period.
    pub keepalive: Duration,
}

impl Connect {
    /// The name used in messages: the URL without its query, which may hold a token.
    pub fn name(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("/");
        format!("ws://{}{}", self.addr, if path == "/" { "" } else { path })
    }
}

/// Splits `rest` into the address part and its `,key=value` settings; calls `setting`
/// for each, which returns false for a key it does not know.
fn settings<'a>(
    text: &str,
    rest: &'a str,
    known: &str,
    mut setting: impl FnMut(&str, &str) -> Result<bool, String>,
) -> Result<&'a str, String> {
    let mut parts = rest.split(',');
    let head = parts.next().unwrap_or_default();
    for token in parts {
        let bad = |why: &str| format!("{text}: bad setting '{token}': {why}");
        let Some((key, value)) = token.split_once('=') else {
            return Err(bad(&format!("expected key=value, one of {known}")));
        };
        if !setting(key, value).map_err(|why| bad(&why))? {
            return Err(bad(&format!("unknown setting; known ones are {known}")));
        }
    }
    Ok(head)
}

/// Parses `keepalive=SECS`.
fn keepalive(value: &str) -> Result<Duration, String> {
    let most = super::LONGEST_WAIT.as_secs();
    match value.parse::<u64>() {
        Ok(secs) if (1..=most).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("keepalive is in seconds, from 1 to {most} (a day)")),
    }
}

/// Parses what follows `ws://`.
pub fn parse_connect(text: &str, rest: &str) -> Result<Connect, String> {
    let mut period = DEFAULT_KEEPALIVE;
    let url = settings(text, rest, "keepalive", |key, value| match key {
        "keepalive" => keepalive(value).map(|k| period = k).map(|_| true),
        _ => Ok(false),
    })?;
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
        return Err(format!("{text}: missing host, e.g. ws://192.168.1.20:8080"));
    }
    let addr = match has_port {
        true => {
            let port = addr.rsplit_once(':').map_or("", |(_, port)| port);
            port.parse::<u16>()
                .map_err(|_| format!("{text}: port must be a number from 0 to 65535"))?;
            addr.to_string()
        }
        false => format!("{addr}:80"),
    };
    Ok(Connect {
        addr,
        path: path.to_string(),
        keepalive: period,
    })
}

/// Parses what follows `ws-listen://`.
pub fn parse_serve(text: &str, rest: &str) -> Result<Serve, String> {
    let (mut token, mut origins, mut period) = (None, Vec::new(), DEFAULT_KEEPALIVE);
    let addr = settings(text, rest, "token, origin, keepalive", |key, value| {
        match key {
            "token" if value.is_empty() => return Err("the token is empty".into()),
            "token" => token = Some(value.to_string()),
            "origin" if !value.contains("://") => {
                return Err(
                    "an origin is a scheme and host, e.g. origin=https://dash.example".into(),
                );
            }
            "origin" => origins.push(value.trim_end_matches('/').to_string()),
            "keepalive" => period = keepalive(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Serve {
        listen: listen::parse(text, addr)?,
        token,
        origins,
        keepalive: period,
    })
}

/// Connects to the WebSocket server of `connect`.
pub fn connect(
    name: &str,
    connect: &Connect,
    options: &OpenOptions,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<Shape> {
    let mut stream = super::tcp::connect_stream(&connect.addr, interrupted)?;
    stream.set_nodelay(true)?;
    http::handshake(&mut stream, &connect.addr, &connect.path)?;
    info!("{name}: connected to {}", stream.peer_addr()?);
    let conn = Conn::new(
        Role::Client,
        name.to_string(),
        &options.framing,
        connect.keepalive,
        &stream,
    )?;
    Ok(Shape::Messages(Box::new(Client { stream, conn })))
}

/// A connected `ws://` endpoint, not yet started.
struct Client {
    stream: TcpStream,
    conn: Conn,
}

impl Messages for Client {
    fn start(self: Box<Self>, inbox: Box<dyn Inbox>) -> io::Result<Running> {
        let conn = Arc::new(self.conn);
        let (queue_tx, queue_rx) = bounded::<Arc<Batch>>(SEND_QUEUE);
        let input = self.stream.try_clone()?;
        let reading = Arc::clone(&conn);
        let name = reading.peer().to_string();
        thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                let mut inlet = inbox.open(&name);
                let result = reading.read(input, &mut *inlet);
                match result {
                    // The server closed: dropping the inlet and the inbox says so.
                    Ok(()) => drop(inlet),
                    Err(e) => inlet.fail(e),
                }
                reading.hang_up();
            })?;
        let writing = Arc::clone(&conn);
        let output = self.stream;
        let (done_tx, done_rx) = bounded::<()>(0);
        thread::Builder::new()
            .name(format!("write {}", conn.peer()))
            .spawn(move || {
                let _done = done_tx;
                let _ = writing.write(output, queue_rx);
            })?;
        Ok(Running {
            outbox: Box::new(Queue(queue_tx.clone())),
            outbox_now: Some(Box::new(Queue(queue_tx))),
            guard: Box::new(Closer {
                conn,
                done: done_rx,
            }),
        })
    }
}

/// A `ws://` connection's way out: its writer's queue.
struct Queue(Sender<Arc<Batch>>);

impl Outbox for Queue {
    fn send(&mut self, batch: &Batch) -> io::Result<Dropped> {
        self.0
            .send(Arc::new(batch.clone()))
            .map_err(|_| io::ErrorKind::BrokenPipe)?;
        Ok(Dropped::default())
    }
}

impl SendNow for Queue {
    fn send_now(&mut self, batch: &Batch) -> Taken {
        let bytes = match self.0.try_send(Arc::new(batch.clone())) {
            Ok(()) => batch.bytes().len(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => 0,
        };
        Taken {
            bytes,
            dropped: Dropped::default(),
        }
    }
}

/// Closes a `ws://` connection when the bridge ends: a close frame, then the socket.
struct Closer {
    conn: Arc<Conn>,
    /// Disconnected once the writer has ended.
    done: crossbeam_channel::Receiver<()>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.conn.close(CloseCode::Away, "the bridge is stopping");
        let _ = self.done.recv_timeout(CLOSE_WAIT);
        self.conn.hang_up();
    }
}

/// How long closing waits for the close frame to go out.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Binds a `ws-listen://` endpoint.
pub fn serve(name: &str, serve: &Serve, options: &OpenOptions) -> io::Result<Shape> {
    let max = options.max_clients.unwrap_or(DEFAULT_WS_CLIENTS);
    if serve.token.is_none() && !serve.listen.addr.ip().is_loopback() {
        warn!(
            "{name}: no token= and listening beyond this machine: anyone on the network can \
             talk to the device (add ,token=SECRET)"
        );
    }
    let server = Server {
        name: name.to_string(),
        settings: serve.clone(),
        framing: options.framing.clone(),
        max_clients: max,
    };
    listen::bind(name, &serve.listen, max, server)
}

/// The `ws-listen://` protocol: the page, the handshake and its checks.
struct Server {
    name: String,
    settings: Serve,
    framing: Framing,
    max_clients: usize,
}

impl Server {
    /// Whether a browser's `origin` may talk to the device: its own page's, or one the
    /// user allowed.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        let own = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        });
        own || self
            .settings
            .origins
            .iter()
            .any(|o| o == "*" || o == origin)
    }
}

impl Protocol for Server {
    type Conn = Conn;

    fn greet(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        room: bool,
    ) -> io::Result<Option<Conn>> {
        let name = &self.name;
        let Some(request) = http::read_request(stream)? else {
            http::answer(stream, "400 Bad Request", "not an HTTP request\n", "")?;
            return Ok(None);
        };
        if !request.upgrade {
            return match (request.method.as_str(), request.path.as_str()) {
                ("GET" | "HEAD", "/" | "/index.html") => http::page(stream, CONSOLE).map(|_| None),
                ("GET" | "HEAD", _) => {
                    http::answer(stream, "404 Not Found", "not found\n", "").map(|_| None)
                }
                _ => http::answer(
                    stream,
                    "405 Method Not Allowed",
                    "only GET\n",
                    "Allow: GET\r\n",
                )
                .map(|_| None),
            };
        }
        let refuse = |stream: &mut TcpStream, status: &str, why: &str| {
            info!("{name}: refused {peer}: {why} ({status})");
            http::answer(stream, status, &format!("{why}\n"), "").map(|_| None)
        };
        let Some(key) = request.key.as_deref().filter(|_| request.method == "GET") else {
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
            && request.token.as_deref() != Some(token.as_str())
        {
            return refuse(stream, "401 Unauthorized", "wrong or missing token");
        }
        if let Some(origin) = &request.origin
            && !self.origin_allowed(origin, request.host.as_deref())
        {
            let why = format!("origin {origin} is not allowed (see origin=)");
            return refuse(stream, "403 Forbidden", &why);
        }
        if !room {
            let why = format!("already serving {} (see --max-clients)", self.max_clients);
            return refuse(stream, "503 Service Unavailable", &why);
        }
        http::switch(stream, key)?;
        let peer = format!("{name} client {peer}");
        Conn::new(
            Role::Server,
            peer,
            &self.framing,
            self.settings.keepalive,
            stream,
        )
        .map(Some)
    }

    fn read(&self, conn: &Conn, stream: TcpStream, inlet: &mut dyn Inlet) -> io::Result<()> {
        conn.read(stream, inlet)
    }

    fn write(
        &self,
        conn: &Conn,
        stream: TcpStream,
        queue: crossbeam_channel::Receiver<Arc<Batch>>,
    ) -> io::Result<()> {
        conn.write(stream, queue)
    }
}
