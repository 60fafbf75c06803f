//! `rfc2217://HOST:PORT[,settings]`: a remote serial port (ser2net, an ESP's RFC 2217
//! server, another bridge's `rfc2217-listen://`) that behaves like a local one. At
//! connect the telnet options are negotiated and the port's settings sent, each answer
//! checked: a server that takes another value than asked is refused at start (exit 3,
//! with what it answered). Then it is a byte stream: the reader undoes the telnet
//! coding and answers the server's negotiation, the writer doubles 0xFF; both write to
//! the socket under one lock, each a whole message.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, info};

use super::Rfc2217;
use super::comport::{Com, control, data_value, flow_value, parity_value, stop_value};
use super::telnet::{self, BINARY, COM_PORT, Command, Decoder, Piece, SGA};
use crate::endpoint::contract::{Endpoint, Opening};
use crate::endpoint::control::{Control, Line, Modem};
use crate::endpoint::stream::{READ_BUFFER, Stream};
use crate::endpoint::tcp::connect_wire;
use crate::endpoint::tls::wire::Wire;

/// How long the server may take to agree to COM-PORT-OPTION and to answer each
/// setting: pyserial waits 3 s; a server across the world answers within one.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Bytes from the remote port kept while it is being set, at most (a port that talks
/// all the time, or a server that floods and never agrees, cannot fill memory).
const OPENING_DATA: usize = 64 * 1024;

/// The options a client agrees to, both ways.
const AGREED: &[u8] = &[BINARY, SGA, COM_PORT];

/// The socket's writing side, shared by the reader (answers) and the writer (data).
type Out = Arc<Mutex<Wire>>;

fn send(out: &Out, bytes: &[u8]) -> io::Result<()> {
    out.lock()
        .unwrap_or_else(|e| e.into_inner())
        .write_all(bytes)
}

/// Connects to the server of `kind`, negotiates and sets the port: the endpoint.
pub fn open(kind: &Rfc2217, line: Line, opening: &Opening<'_>) -> io::Result<Endpoint> {
    let stream = connect_wire(
        opening.name,
        &kind.addr,
        kind.tls.as_ref(),
        opening.interrupt(),
    )?;
    let peer = stream.peer_addr()?;
    let out: Out = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = TelnetReader {
        stream: stream.try_clone()?,
        out: Arc::clone(&out),
        decoder: Decoder::default(),
        options: telnet::Options::new(AGREED),
        data: Vec::new(),
        answers: Vec::new(),
        raw: vec![0; READ_BUFFER],
        name: opening.name.to_string(),
        opening: true,
    };
    let mut hello = reader.options.ask(BINARY);
    hello.extend(reader.options.ask(SGA));
    hello.extend(reader.options.ask(COM_PORT));
    send(&out, &hello)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = Instant::now() + ANSWER_WITHIN;
    reader
        .wait(deadline, opening, |r| !r.options.asking(COM_PORT))
        .map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{peer} does not speak RFC 2217 (no COM-PORT-OPTION within {} s); \
                     for a plain TCP port use tcp://",
                    ANSWER_WITHIN.as_secs()
                ),
            ),
            _ => e,
        })?;
    if !reader.options.ours(COM_PORT) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{peer} refused COM-PORT-OPTION: it speaks telnet, not RFC 2217; for a \
                 plain telnet or TCP port use tcp://"
            ),
        ));
    }
    let mut asked = vec![
        (Com::Baud(line.baud), "baud", line.baud.to_string()),
        (
            Com::DataSize(data_value(line.data)),
            "data",
            u8::from(line.data).to_string(),
        ),
        (
            Com::Parity(parity_value(line.parity)),
            "parity",
            format!("{:?}", line.parity).to_lowercase(),
        ),
        (
            Com::StopSize(stop_value(line.stop)),
            "stop",
            format!("{}", stop_value(line.stop)),
        ),
        (
            Com::Control(flow_value(line.flow)),
            "flow",
            format!("{:?}", line.flow).to_lowercase(),
        ),
    ];
    for (level, on, off, what) in [
        (kind.dtr, control::DTR_ON, control::DTR_OFF, "dtr"),
        (kind.rts, control::RTS_ON, control::RTS_OFF, "rts"),
    ] {
        if let Some(level) = level {
            let value = if level { on } else { off };
            asked.push((
                Com::Control(value),
                what,
                if level { "on" } else { "off" }.into(),
            ));
        }
    }
    for (com, key, value) in asked {
        send(&out, &com.encode(false))?;
        let deadline = Instant::now() + ANSWER_WITHIN;
        reader
            .wait(deadline, opening, |r| r.answer_to(&com).is_some())
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the server gave no answer to {key}={value} within {} s",
                        ANSWER_WITHIN.as_secs()
                    ),
                ),
                _ => e,
            })?;
        let answer = reader.answer_to(&com).expect("waited for it");
        if answer != com {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server refused {key}={value}: it answered {}",
                    show(&answer)
                ),
            ));
        }
        reader.answers.clear();
    }
    stream.set_read_timeout(None)?;
    reader.opening = false;
    let over = if stream.is_tls() { " over TLS" } else { "" };
    info!(
        "{}: connected to {peer}{over}, the port set to {line}",
        opening.name
    );
    let remote = Remote {
        out: Arc::clone(&out),
        line: Mutex::new(line),
        own: line,
    };
    let writer = TelnetWriter {
        out,
        escaped: Vec::new(),
    };
    let halves = Stream::new(Box::new(reader), Box::new(writer));
    Ok(Endpoint::new(opening.name, halves)
        .settling(kind.settle.or(opening.defaults.settle))
        .controlled_by(Arc::new(remote)))
}

/// The remote port's controls, for a pty across whose program changes its settings:
/// each change is sent as the SET for it; the answer comes to the reader, which logs
/// it (nothing waits for it: a local port's tcsetattr does not wait either).
struct Remote {
    out: Out,
    /// The settings last sent.
    line: Mutex<Line>,
    /// Those set at connect.
    own: Line,
}

impl Control for Remote {
    fn line(&self) -> Line {
        *self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_line(&self, line: &Line) -> io::Result<()> {
        let mut now = self.line.lock().unwrap_or_else(|e| e.into_inner());
        let mut sets = Vec::new();
        if line.baud != now.baud {
            sets.extend(Com::Baud(line.baud).encode(false));
        }
        if line.data != now.data {
            sets.extend(Com::DataSize(data_value(line.data)).encode(false));
        }
        if line.parity != now.parity {
            sets.extend(Com::Parity(parity_value(line.parity)).encode(false));
        }
        if line.stop != now.stop {
            sets.extend(Com::StopSize(stop_value(line.stop)).encode(false));
        }
        if line.flow != now.flow {
            sets.extend(Com::Control(flow_value(line.flow)).encode(false));
        }
        send(&self.out, &sets)?;
        *now = *line;
        Ok(())
    }

    fn set_lines(&self, dtr: Option<bool>, rts: Option<bool>) -> io::Result<()> {
        let mut sets = Vec::new();
        for (level, on, off) in [
            (dtr, control::DTR_ON, control::DTR_OFF),
            (rts, control::RTS_ON, control::RTS_OFF),
        ] {
            if let Some(level) = level {
                sets.extend(Com::Control(if level { on } else { off }).encode(false));
            }
        }
        send(&self.out, &sets)
    }

    fn set_break(&self, on: bool) -> io::Result<()> {
        let value = if on {
            control::BREAK_ON
        } else {
            control::BREAK_OFF
        };
        send(&self.out, &Com::Control(value).encode(false))
    }

    fn purge(&self, receive: bool, transmit: bool) -> io::Result<()> {
        let which = u8::from(receive) | (u8::from(transmit) << 1);
        match which {
            0 => Ok(()),
            _ => send(&self.out, &Com::Purge(which).encode(false)),
        }
    }

    fn modem(&self) -> io::Result<Modem> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn restore(&self) {
        let _ = self.set_line(&self.own);
    }

    fn remote(&self) -> bool {
        true
    }
}

/// A server's answer, as a user would write it.
fn show(com: &Com) -> String {
    match com {
        Com::Baud(baud) => format!("baud {baud}"),
        Com::DataSize(v) => format!("data {v}"),
        Com::Parity(v) => format!(
            "parity {}",
            ["?", "none", "odd", "even", "mark", "space"]
                .get(usize::from(*v))
                .unwrap_or(&"?")
        ),
        Com::StopSize(v) => format!(
            "stop {}",
            ["?", "1", "2", "1.5"].get(usize::from(*v)).unwrap_or(&"?")
        ),
        Com::Control(v) => format!("control value {v}"),
        other => format!("{other:?}"),
    }
}

/// The read half: telnet undone, the server's negotiation answered.
struct TelnetReader {
    stream: Wire,
    out: Out,
    decoder: Decoder,
    options: telnet::Options,
    /// Data decoded and not yet read.
    data: Vec<u8>,
    /// The server's COM-PORT answers not yet looked at (while opening).
    answers: Vec<Com>,
    raw: Vec<u8>,
    name: String,
    /// Whether the port is being set: answers are kept to be checked. Later they are
    /// only logged.
    opening: bool,
}

impl TelnetReader {
    /// Reads once from the server: data kept, commands handled. `Ok(false)` at EOF.
    fn pull(&mut self) -> io::Result<bool> {
        let n = match self.stream.read(&mut self.raw) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
        };
        let mut replies = Vec::new();
        let opening = self.opening;
        let (data, options, answers, name) = (
            &mut self.data,
            &mut self.options,
            &mut self.answers,
            &self.name,
        );
        self.decoder
            .decode(&self.raw[..n], |piece| match piece {
                Piece::Data(bytes) => data.extend_from_slice(bytes),
                Piece::Command(Command::Negotiate(verb, option)) => {
                    if let Some(answer) = options.received(verb, option) {
                        replies.extend_from_slice(&answer);
                    }
                }
                Piece::Command(Command::Sub(sub)) => match Com::parse(&sub) {
                    Some((Com::ModemState(Some(state)), true)) => {
                        debug!("{name}: modem state {state:#04x}");
                    }
                    Some((Com::LineState(state), true)) => {
                        debug!("{name}: line state {state:#04x}");
                    }
                    Some((com, true)) if opening => answers.push(com),
                    Some((com, true)) => debug!("{name}: the server answered {}", show(&com)),
                    _ => debug!("{name}: ignored a subnegotiation"),
                },
            })
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server sent an endless subnegotiation",
                )
            })?;
        if !replies.is_empty() {
            send(&self.out, &replies)?;
        }
        if self.opening && self.data.len() > OPENING_DATA {
            // The port talks before the bridge runs: keep its latest bytes only.
            let extra = self.data.len() - OPENING_DATA;
            self.data.drain(..extra);
            debug!(
                "{}: {extra} bytes from the port before it was set, not kept",
                self.name
            );
        }
        Ok(true)
    }

    /// Reads until `done` says so, `deadline` passes (`TimedOut`) or the bridge stops.
    fn wait(
        &mut self,
        deadline: Instant,
        opening: &Opening<'_>,
        done: impl Fn(&TelnetReader) -> bool,
    ) -> io::Result<()> {
        while !done(self) {
            if opening.interrupted() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"));
            }
            match self.pull() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server closed the connection while the port was being set",
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The server's answer to `asked`, if it came.
    fn answer_to(&self, asked: &Com) -> Option<Com> {
        self.answers
            .iter()
            .find(|answer| std::mem::discriminant(*answer) == std::mem::discriminant(asked))
            .filter(|answer| match (answer, asked) {
                // A SET-CONTROL answer is about the same thing: flow, DTR or RTS.
                (Com::Control(a), Com::Control(b)) => control_group(*a) == control_group(*b),
                _ => true,
            })
            .cloned()
    }
}

/// Which thing a SET-CONTROL value is about.
fn control_group(value: u8) -> u8 {
    match value {
        0..=3 => 0,
        4..=6 => 1,
        7..=9 => 2,
        10..=12 => 3,
        _ => 4,
    }
}

impl Read for TelnetReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.data.is_empty() {
            match self.pull() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                // A reset connection is a close, as for tcp://.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data.drain(..n);
        Ok(n)
    }
}

/// The write half: 0xFF doubled, each write whole.
struct TelnetWriter {
    out: Out,
    escaped: Vec<u8>,
}

impl Write for TelnetWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.escaped.clear();
        telnet::escape(buf, &mut self.escaped);
        send(&self.out, &self.escaped)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_matched_to_what_was_asked() {
        assert_eq!(
            control_group(control::DTR_OFF),
            control_group(control::DTR_ON)
        );
        assert_ne!(
            control_group(control::RTS_ON),
            control_group(control::DTR_ON)
        );
        assert_eq!(
            control_group(control::FLOW_NONE),
            control_group(control::FLOW_HARDWARE)
        );
        assert_eq!(show(&Com::Parity(4)), "parity mark");
        assert_eq!(show(&Com::StopSize(3)), "stop 1.5");
        assert_eq!(show(&Com::Baud(300)), "baud 300");
    }
}
