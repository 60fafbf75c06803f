//! `mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER,...`: a client of an MQTT 3.1.1
//! broker, a message endpoint. One message is one line: a line from the other side is
//! published without its delimiter, and a message on the `sub` filter reaches the other
//! side with the delimiter appended (`--raw`: bytes unchanged either way). Payloads are
//! bytes and are never converted to text.
//!
//! **Opening** ([`open`]) does the whole handshake before the bridge starts, so every
//! refusal is exit 3 with one clear line: the TCP connect ([`super::tcp::connect_stream`],
//! interruptible, 10 s), CONNECT and its CONNACK (bad credentials, not authorised),
//! SUBSCRIBE and its SUBACK (a filter the broker refuses), then the retained `online`
//! on the `status` topic. Messages that arrive before the SUBACK (a persistent
//! session's backlog) are kept and handed over first. The password file is read here,
//! at each connect: one that cannot be read is exit 3 like any other open failure (and
//! with `--reconnect` it is read again at each try, so a rotated password is picked
//! up).
//!
//! **Running** ([`link`]): two threads per connection. The reader decodes packets and
//! hands each PUBLISH payload to the bridge through one inlet; the writer owns every
//! write (publishes, acknowledgements, pings, the goodbye). The bridge's writer thread
//! publishes through the outbox, which encodes a whole batch into one buffer.
//!
//! **QoS 1** ([`session`]): every line published stays in a process-wide session until
//! its PUBACK arrives; the session outlives the connection, and when `--reconnect`
//! opens the endpoint again, what is unacknowledged goes out first with the DUP flag.
//! A line counts as written once it is in the session and on its way. The outbox does
//! not wait for each PUBACK (they queue behind the messages for the other side, so a
//! slow port there would hold back this direction); it waits once 4096 are
//! outstanding. The
//! connection keeps a persistent session at the broker (clean session off, the stable
//! client id) and subscribes at QoS 1, so messages for it wait while it is away. An
//! incoming QoS 1 message is acknowledged once the bridge has taken it (written to the
//! other side, or queued in its bounded pipeline); one it never took is not
//! acknowledged, and the broker sends it again.
//!
//! **Status**: with `status=TOPIC`, `online` is retained there after connecting, and a
//! retained `offline` is the will, which the broker publishes if the connection dies.
//! A clean stop sends DISCONNECT, which cancels the will, so the goodbye publishes the
//! retained `offline` itself first.
//!
//! The codec is hand-written ([`codec`]): nine packet types, a page of code, no
//! dependency and no async runtime; every length from the broker is checked first.
//! MQTT over TLS (`mqtts://`, port 8883) is not supported yet.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::{OpenOptions, READ_BUFFER, Shape, tcp};
use crate::framing::MAX_MAX_LINE;

mod codec;
mod link;
mod receive;
mod session;
mod settings;

pub use settings::{Settings, matches, parse};

/// How often a handshake waiting for the broker checks whether the bridge is stopping.
const HANDSHAKE_POLL: Duration = Duration::from_millis(50);

/// The word retained on the status topic while the bridge is connected.
const ONLINE: &[u8] = b"online";

/// The word retained on the status topic once it is not: the will, and the goodbye.
const OFFLINE: &[u8] = b"offline";

/// Connects to the broker of `settings` as the endpoint `name`: see the module
/// documentation. `interrupted` is asked while the broker is slow to answer.
pub fn open(
    name: &str,
    settings: &Settings,
    options: &OpenOptions,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<Shape> {
    let password = match &settings.password_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let stream = tcp::connect_stream(&settings.address(), interrupted)?;
    stream.set_nodelay(true)?;
    let opened = handshake(name, settings, options, stream, password, interrupted);
    match opened {
        Err(_) if interrupted() => Err(io::ErrorKind::Interrupted.into()),
        Err(e) => Err(e),
        Ok(opened) => Ok(Shape::Messages(Box::new(opened))),
    }
}

/// Reads the password: the file's bytes without one trailing line ending. The error
/// names the file but never its content.
fn read_password(path: &str) -> io::Result<Vec<u8>> {
    let mut password = std::fs::read(path).map_err(|e| {
        // A kind of its own: the serial hints for NotFound would mislead here.
        io::Error::other(format!(
            "password-file {path}: {}",
            e.to_string().to_lowercase()
        ))
    })?;
    if password.ends_with(b"\n") {
        password.pop();
        if password.ends_with(b"\r") {
            password.pop();
        }
    }
    Ok(password)
}

/// CONNECT, CONNACK, SUBSCRIBE, SUBACK, and `online`; see the module documentation.
fn handshake(
    name: &str,
    s: &Settings,
    options: &OpenOptions,
    stream: TcpStream,
    password: Option<Vec<u8>>,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<link::Opened> {
    let session = (s.qos == 1).then(|| session::of(&s.address(), &s.client_id));
    stream.set_read_timeout(Some(HANDSHAKE_POLL))?;
    let patient = Patient {
        stream: &stream,
        interrupted,
        deadline: Instant::now() + tcp::CONNECT_TIMEOUT,
    };
    let mut input = BufReader::with_capacity(READ_BUFFER, patient);
    let mut out = Vec::new();
    codec::connect(
        &mut out,
        &codec::Connect {
            client_id: &s.client_id,
            keepalive: s.keepalive,
            clean_session: s.qos == 0,
            will: s
                .status
                .as_deref()
                .map(|topic| (topic, OFFLINE, s.qos, true)),
            user: s.user.as_deref(),
            password: password.as_deref(),
        },
    );
    (&stream).write_all(&out)?;
    let header = next_header(&mut input)?;
    if header.kind != codec::kind::CONNACK {
        return Err(io::Error::other(format!(
            "not an MQTT broker? it answered CONNECT with a type {} packet",
            header.kind
        )));
    }
    let (kept, code) = codec::connack(&codec::read_body(&mut input, header)?)?;
    if code != 0 {
        return Err(io::Error::other(codec::refusal(code)));
    }
    let resumed = match (s.qos, kept) {
        (0, _) => "",
        (_, true) => ", resuming its session",
        (_, false) => ", new session",
    };
    info!(
        "{name}: connected to {} as {}{resumed}",
        stream.peer_addr()?,
        s.client_id
    );
    let mut early = Vec::new();
    if let Some(filter) = &s.subscribe {
        let pid = session.as_ref().map_or(1, |session| session.pid());
        out.clear();
        codec::subscribe(&mut out, pid, filter, s.qos);
        (&stream).write_all(&out)?;
        loop {
            let header = next_header(&mut input)?;
            match header.kind {
                codec::kind::SUBACK => {
                    let body = codec::read_body(&mut input, header)?;
                    if codec::pid(&body)? != pid {
                        continue;
                    }
                    match body.get(2) {
                        Some(0 | 1) => break,
                        Some(0x80) => {
                            return Err(io::Error::other(format!(
                                "the broker refused the subscription to {filter} \
                                 (not authorised? check its ACLs)"
                            )));
                        }
                        _ => return Err(io::Error::other("malformed SUBACK from the broker")),
                    }
                }
                // A persistent session's backlog can arrive before the SUBACK.
                codec::kind::PUBLISH => early.extend(receive::Early::read(&mut input, header)?),
                _ => {
                    codec::read_body(&mut input, header)?;
                }
            }
        }
        debug!("{name}: subscribed to {filter} at QoS {}", s.qos);
    }
    if let Some(status) = &s.status {
        out.clear();
        codec::publish(&mut out, status, ONLINE, 0, 0, true);
        (&stream).write_all(&out)?;
    }
    let leftover = input.buffer().to_vec();
    // The writer pings every keepalive; a broker silent for half as long again is gone.
    let silence = Duration::from_millis(u64::from(s.keepalive) * 1500);
    stream.set_read_timeout(Some(silence))?;
    Ok(link::Opened {
        name: name.to_string(),
        settings: s.clone(),
        stream,
        leftover,
        early,
        session,
        framing: options.framing.clone(),
        silence,
    })
}

/// The next packet's header; the broker closing the connection is an error here.
fn next_header(input: &mut impl Read) -> io::Result<codec::Header> {
    codec::read_header(input)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the broker closed the connection during the handshake",
        )
    })
}

/// The handshake's read half: waits for the broker until a deadline, giving up early
/// once the bridge is stopping.
struct Patient<'a> {
    stream: &'a TcpStream,
    interrupted: &'a dyn Fn() -> bool,
    deadline: Instant,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&*self.stream).read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Not `Interrupted`: read_exact would retry that. `open` reports it.
                    if (self.interrupted)() {
                        return Err(io::Error::other("stopped while connecting"));
                    }
                    if Instant::now() >= self.deadline {
                        let secs = tcp::CONNECT_TIMEOUT.as_secs();
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the broker did not answer within {secs} s"),
                        ));
                    }
                }
                other => return other,
            }
        }
    }
}

/// Logs once that a message was too long to keep before the subscription was
/// confirmed; used by [`receive::Early::read`].
fn too_long_early(len: usize) {
    warn!(
        "a message of {len} bytes arrived while subscribing, more than {MAX_MAX_LINE} \
         bytes; skipped it"
    );
}
