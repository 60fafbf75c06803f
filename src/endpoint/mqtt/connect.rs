//! Opening an MQTT endpoint: the connect, the handshake and the checks on a pair.

use std::any::Any;
use std::io::{self, BufReader, Read, Write};
use std::time::{Duration, Instant};

use log::{debug, info};

use super::codec::{self, OFFLINE, ONLINE};
use super::link::Opened;
use super::receive;
use super::session;
use super::settings::{Settings, matches};
use crate::endpoint::contract::{Endpoint, Kind, Opening};
use crate::endpoint::stream::READ_BUFFER;
use crate::endpoint::tcp::{self, connect_wire};
use crate::endpoint::tls::wire::Wire;
use crate::framing::Framing;

/// How often a handshake waiting for the broker checks whether the bridge is stopping.
const HANDSHAKE_POLL: Duration = Duration::from_millis(50);

impl Kind for Settings {
    fn name(&self) -> String {
        self.to_string()
    }

    /// A plain connection that the server hangs up on in its handshake may have reached
    /// a TLS port: say so.
    fn why(&self, error: &io::Error) -> String {
        match self.tls {
            None => crate::endpoint::tls::explain::plain_at_tls_port(error, "mqtts://"),
            Some(_) => crate::error::describe(error),
        }
    }

    /// Connects to the broker: see the module documentation. The open waits for the
    /// broker at most [`tcp::CONNECT_TIMEOUT`], giving up once the bridge is stopping.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let password = match &self.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let stream = connect_wire(
            opening.name,
            &self.address(),
            self.tls.as_ref(),
            opening.interrupt(),
        )?;
        let framing = &opening.defaults.framing;
        let interrupted = opening.interrupt();
        match handshake(opening.name, self, framing, stream, password, interrupted) {
            Err(_) if opening.interrupted() => Err(io::ErrorKind::Interrupted.into()),
            Err(e) => Err(e),
            Ok(opened) => Ok(Endpoint::new(opening.name, opened)),
        }
    }

    /// Refuses two MQTT endpoints on one broker with the same client id (the broker
    /// would keep dropping one for the other), or where either subscribes to what the
    /// other publishes (every line would come straight back, for ever).
    fn check_pair(&self, other: &dyn Kind) -> Result<(), String> {
        let Some(other) = other.as_any().downcast_ref::<Settings>() else {
            return Ok(());
        };
        if !self.same_broker(other) {
            return Ok(());
        }
        if self.client_id == other.client_id {
            return Err(format!(
                "{other}: client-id={} is the other endpoint's too; a broker keeps one \
                 connection per client id, so each would throw the other off for ever: give \
                 one of them another client-id=",
                other.client_id
            ));
        }
        for (from, to) in [(self, other), (other, self)] {
            if let (Some(topic), Some(filter)) = (&from.publish, &to.subscribe)
                && matches(filter, topic)
            {
                return Err(format!(
                    "{to}: sub={filter} takes back what the other side publishes on {topic}; \
                     every line would go round for ever"
                ));
            }
        }
        Ok(())
    }

    /// A TLS failure that waiting will not mend ends even `--reconnect` at start.
    fn lasting(&self, error: &io::Error) -> bool {
        self.tls.is_some() && crate::endpoint::tls::explain::lasting(error)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads the password: the file's bytes without one trailing line ending. The error
/// names the file but never its content.
fn read_password(path: &str) -> io::Result<Vec<u8>> {
    // A kind of its own: the serial hints for NotFound would mislead here.
    let fail = |why: String| io::Error::other(format!("password-file {path}: {why}"));
    let os = |e: io::Error| fail(crate::error::os_message(&e));
    // Only a plain file: a FIFO nobody writes would block a stop, /dev/zero never ends.
    if !std::fs::metadata(path).map_err(os)?.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut password = Vec::new();
    let most = u64::from(u16::MAX) + 2; // the password, then a line end
    std::fs::File::open(path)
        .and_then(|file| file.take(most + 1).read_to_end(&mut password))
        .map_err(os)?;
    if password.ends_with(b"\n") {
        password.pop();
        if password.ends_with(b"\r") {
            password.pop();
        }
    }
    if password.len() > usize::from(u16::MAX) {
        return Err(fail(
            "longer than 65535 bytes, more than MQTT carries".into(),
        ));
    }
    Ok(password)
}

/// CONNECT, CONNACK, SUBSCRIBE, SUBACK, and `online`; see the module documentation.
fn handshake(
    name: &str,
    s: &Settings,
    framing: &Framing,
    mut stream: Wire,
    password: Option<Vec<u8>>,
    interrupted: &dyn Fn() -> bool,
) -> io::Result<Opened> {
    let session = (s.qos == 1).then(|| session::of(&s.address(), &s.client_id));
    stream.set_read_timeout(Some(HANDSHAKE_POLL))?;
    let patient = Patient {
        stream: stream.try_clone()?,
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
    stream.write_all(&out)?;
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
    let over = if stream.is_tls() { " over TLS" } else { "" };
    info!(
        "{name}: connected to {}{over} as {}{resumed}",
        stream.peer_addr()?,
        s.client_id
    );
    let (mut early, mut kept) = (Vec::new(), 0);
    if let Some(filter) = &s.subscribe {
        let pid = session.as_ref().map_or(1, |session| session.pid());
        out.clear();
        codec::subscribe(&mut out, pid, filter, s.qos);
        stream.write_all(&out)?;
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
                codec::kind::PUBLISH => {
                    early.push(receive::Early::read(&mut input, header, &mut kept)?)
                }
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
        stream.write_all(&out)?;
    }
    let leftover = input.buffer().to_vec();
    // The writer pings every keepalive; a broker silent for half as long again is gone.
    let silence = Duration::from_millis(u64::from(s.keepalive) * 1500);
    stream.set_read_timeout(Some(silence))?;
    Ok(Opened {
        name: name.to_string(),
        settings: s.clone(),
        stream,
        leftover,
        early,
        session,
        framing: framing.clone(),
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
    stream: Wire,
    interrupted: &'a dyn Fn() -> bool,
    deadline: Instant,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
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
