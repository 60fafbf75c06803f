//! The HTTP around a WebSocket: the handshake on both sides, and the one page
//! `ws-listen://` serves. Requests and responses are parsed with httparse, which
//! tungstenite already depends on; the accept key is tungstenite's.
//!
//! A head is read a byte at a time up to its blank line, so not one byte of the
//! WebSocket frames that may follow it is taken; it is small and read once per
//! connection. A peer that sends no complete head within [`HEAD_TIMEOUT`], or one
//! larger than [`HEAD_LIMIT`], gets an error and is closed.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;

use crate::endpoint::tls::wire::Wire;

/// The largest request or response head taken.
const HEAD_LIMIT: usize = 16 * 1024;

/// How long a peer may take to send its head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers looked at, at most.
const MAX_HEADERS: usize = 64;

/// Reads a head up to and including its blank line, within [`HEAD_TIMEOUT`] in all,
/// giving up (`Interrupted`) once `interrupted` says so. Lines may end in a bare LF,
/// as a head typed into `nc` does; httparse takes both.
fn read_head(stream: &mut Wire, interrupted: &dyn Fn() -> bool) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0];
    // The blank line: "\r\n" or "\n", after a line that ended either way.
    while !(head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n")) {
        if head.len() >= HEAD_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the head is too large",
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete head in time",
            ));
        }
        if interrupted() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        stream.set_read_timeout(Some(left.min(HEAD_POLL)))?;
        match stream.read(&mut byte) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => head.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    stream.set_read_timeout(None)?;
    Ok(head)
}

/// How often a read of a head looks at the clock and the stop signal.
const HEAD_POLL: Duration = Duration::from_millis(50);

/// A parsed request: what the server decides on.
#[derive(Debug, Default)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The path without its query.
    pub path: String,
    /// The query's `token=` value, if any.
    /// The `token=` of the query, its `%XX` escapes decoded; empty (which no token
    /// set on the command line is) when an escape is bad.
    pub token: Option<Vec<u8>>,
    /// Whether it asks for a WebSocket.
    pub upgrade: bool,
    /// `Sec-WebSocket-Key`.
    pub key: Option<String>,
    /// `Sec-WebSocket-Version`.
    pub version: Option<String>,
    /// `Host`.
    pub host: Option<String>,
    /// `Origin`, which browsers send and other clients usually do not.
    pub origin: Option<String>,
    /// The subprotocols asked for (`Sec-WebSocket-Protocol`), in order.
    pub protocols: Vec<String>,
}

/// Reads and parses a request head; `Ok(None)` for one that is not HTTP.
pub fn read_request(stream: &mut Wire) -> io::Result<Option<Request>> {
    let head = read_head(stream, &|| false)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Ok(None);
    }
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: parsed.method.unwrap_or_default().to_string(),
        path: path.to_string(),
        token: query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(|token| percent_decode(token).unwrap_or_default()),
        ..Request::default()
    };
    for header in parsed.headers.iter() {
        let value = String::from_utf8_lossy(header.value).trim().to_string();
        match header.name.to_ascii_lowercase().as_str() {
            "upgrade" => request.upgrade |= value.eq_ignore_ascii_case("websocket"),
            "sec-websocket-key" => request.key = Some(value),
            "sec-websocket-version" => request.version = Some(value),
            "host" => request.host = Some(value),
            "origin" => request.origin = Some(value),
            "sec-websocket-protocol" => request.protocols.extend(
                value
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
            ),
            _ => {}
        }
    }
    Ok(Some(request))
}

/// `text` with every byte but letters, digits and `-._~` as a `%XX` escape, for a URL.
pub fn percent_encode(text: &[u8]) -> String {
    text.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bytes `text` stands for, its `%XX` escapes decoded (a browser may encode a
/// token); `None` when a `%` is not followed by two hex digits. Tokens are compared as
/// these bytes, never as text.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
        i += 3;
    }
    Some(out)
}

/// Answers a request with a status and a short text, and closes.
pub fn answer(stream: &mut Wire, status: &str, body: &str, extra: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// `text` safe inside an HTML attribute or element.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Serves a file of the page, `content` of type `kind` (or, for `HEAD`, only its
/// head), and closes.
pub fn page(stream: &mut Wire, kind: &str, content: &str, body: bool) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n",
        content.len()
    );
    stream.write_all(response.as_bytes())?;
    if body {
        stream.write_all(content.as_bytes())?;
    }
    stream.flush()
}

/// Accepts a WebSocket request whose key is `key`, speaking `protocol` if one is chosen.
pub fn switch(stream: &mut Wire, key: &str, protocol: Option<&str>) -> io::Result<()> {
    let protocol = match protocol {
        Some(protocol) => format!("Sec-WebSocket-Protocol: {protocol}\r\n"),
        None => String::new(),
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{protocol}\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The client's side of the handshake: asks `host` for `path` and checks the answer.
pub fn handshake(
    stream: &mut Wire,
    host: &str,
    path: &str,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<()> {
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         User-Agent: serial-bridge/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes())?;
    let head = read_head(stream, interrupted).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::other(format!(
            "the server took the connection but did not answer the WebSocket request within {} s",
            HEAD_TIMEOUT.as_secs()
        )),
        _ => e,
    })?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's answer is not HTTP (is it a WebSocket server?)",
        ));
    }
    let code = parsed.code.unwrap_or_default();
    if code != 101 {
        let reason = parsed.reason.unwrap_or_default();
        let hint = match code {
            401 => " (a token is needed: add ?token=... to the URL)",
            403 => " (this client's origin is not allowed)",
            404 => " (is the path right?)",
            _ => "",
        };
        return Err(io::Error::other(format!(
            "the server answered {code} {reason}{hint}"
        )));
    }
    let accept = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's WebSocket answer has a wrong accept key",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_with_bare_line_feeds_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut server = Wire::plain(listener.accept().unwrap().0);
        for head in [
            &b"GET /?token=a HTTP/1.1\nHost: x\nUpgrade: websocket\n\n"[..],
            b"GET /?token=a HTTP/1.1\nHost: x\nUpgrade: websocket\n\r\n",
            b"GET /?token=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\n",
        ] {
            client.write_all(head).unwrap();
            let request = read_request(&mut server).unwrap().expect("HTTP");
            assert_eq!(request.token.as_deref(), Some(&b"a"[..]));
            assert_eq!(request.host.as_deref(), Some("x"));
            assert!(request.upgrade);
        }
    }

    #[test]
    fn tokens_are_decoded_to_bytes_and_bad_escapes_refused() {
        let decode = |text: &str| percent_decode(text);
        assert_eq!(decode("a%20b+c").as_deref(), Some(&b"a b+c"[..]));
        assert_eq!(decode("s3cr%C3%A9t").unwrap(), "s3cr\u{e9}t".as_bytes());
        // Bytes, not text: these two differ though neither is UTF-8.
        assert_ne!(decode("%FF%FE"), decode("%80%81"));
        for bad in ["%2", "%+1", "%G0", "a%", "%%41"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        for text in [&b"plain-._~"[..], "a b&c=d/é%".as_bytes(), b"\xff\x00"] {
            assert_eq!(decode(&percent_encode(text)).unwrap(), text);
        }
        assert_eq!(percent_encode(b"a b&"), "a%20b%26");
    }
}
