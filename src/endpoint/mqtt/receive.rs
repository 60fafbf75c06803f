//! The receiving half of a connection: the reader thread, and how messages are handed
//! to the bridge.
//!
//! The reader decodes packets from a buffered read half ([`Input`]): each PUBACK goes
//! to the session, each PUBLISH payload to the bridge through the connection's one
//! inlet ([`Handover`]). A QoS 1 message is acknowledged only once the bridge took it.
//!
//! **Gathering.** A broker sends a burst as many small packets, and one inlet call per
//! message would cost one write to the other side per line. So messages already
//! buffered are gathered, each payload followed by the delimiter, and handed over in
//! one [`Inlet::feed`] when nothing more is buffered (or 16 KiB are gathered): the
//! framer cuts them into exactly the lines one [`Inlet::message`] each would have
//! made, because a message is gathered only if its payload and delimiter hold the
//! delimiter once, at the end. Any other message (one holding the delimiter, or
//! longer than `--max-line`, or any message with `--raw`) goes on by itself, after
//! what was gathered. Waiting for more never delays a line: gathering stops as soon as
//! a read would block.
//!
//! A payload longer than `--max-line` is streamed through the framer in pieces, so
//! memory stays bounded whatever the broker sends; so is what arrives before the
//! SUBACK ([`EARLY_LIMIT`]).
//!
//! **Only what `sub=` names** reaches the other side. A message on any other topic (a
//! subscription a persistent session kept from an earlier run with other settings, or
//! a broker sending what nobody asked for) is acknowledged, dropped and counted.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use memchr::memmem;

use super::codec::{self, kind};
use super::connection::{Command, Link};
use super::settings::matches;
use crate::endpoint::contract::Inlet;
use crate::endpoint::stream::READ_BUFFER;

/// Gathered bytes handed over at once at most: one read's worth.
const GATHER: usize = READ_BUFFER;

/// Payload bytes kept at most, all together, of messages that arrive before the
/// SUBACK (a persistent session's backlog): they wait in memory until the bridge
/// starts. Messages beyond it are acknowledged and counted as dropped.
pub const EARLY_LIMIT: usize = 1 << 20;

/// A message that arrived during the handshake; `payload` is `None` if it was dropped
/// (beyond [`EARLY_LIMIT`]).
pub struct Early {
    topic: String,
    pid: Option<u16>,
    payload: Option<Vec<u8>>,
}

impl Early {
    /// Reads a PUBLISH whose `header` was read; `kept` is what earlier ones keep, and
    /// grows by what this one keeps.
    pub fn read(
        input: &mut impl Read,
        header: codec::Header,
        kept: &mut usize,
    ) -> io::Result<Early> {
        let publish = codec::read_publish(input, header)?;
        let len = publish.payload;
        let payload = if kept.saturating_add(len) > EARLY_LIMIT {
            if *kept <= EARLY_LIMIT {
                log::warn!(
                    "more than {} arrived before the subscription was confirmed; \
                     dropping the rest of them (counted)",
                    crate::words::count(EARLY_LIMIT as u64, "byte")
                );
                *kept = EARLY_LIMIT + 1;
            }
            skip(input, len)?;
            None
        } else {
            let mut payload = vec![0; len];
            input.read_exact(&mut payload)?;
            *kept += len;
            Some(payload)
        };
        Ok(Early {
            topic: publish.topic,
            pid: publish.pid,
            payload,
        })
    }
}

/// A buffered read half that tells how much it holds already: what can be read
/// without waiting.
pub struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> Input<R> {
    /// Reads `inner`, after `leftover` (bytes read ahead during the handshake).
    pub fn new(inner: R, leftover: Vec<u8>) -> Input<R> {
        let end = leftover.len();
        let mut buf = leftover;
        buf.resize(end.max(READ_BUFFER), 0);
        Input {
            inner,
            buf,
            start: 0,
            end,
        }
    }

    /// Bytes that can be read without waiting.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if out.len() >= self.buf.len() {
                return self.inner.read(out);
            }
            (self.start, self.end) = (0, 0);
            self.end = self.inner.read(&mut self.buf)?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// Messages on their way into the bridge; see the module documentation.
pub struct Handover {
    /// `None` once the bridge takes nothing more.
    inlet: Option<Box<dyn Inlet>>,
    /// Payloads up to this long are one line (`--max-line`); longer ones are streamed.
    whole: usize,
    /// The delimiter; `None` with `--raw`, where nothing is gathered.
    delimiter: Option<Vec<u8>>,
    /// Gathered lines, each payload followed by the delimiter.
    lines: Vec<u8>,
    /// The PUBACKs of the gathered QoS 1 messages.
    acks: Vec<u8>,
    /// `sub=`: only topics it matches reach the bridge.
    filter: Option<String>,
    /// Whether a message outside it was logged.
    warned: bool,
    /// The endpoint's name, for that log line.
    name: String,
}

impl Handover {
    /// Hands messages on topics `filter` matches to `inlet`; see [`Handover`]'s fields.
    pub fn new(
        inlet: Box<dyn Inlet>,
        whole: usize,
        delimiter: Option<Vec<u8>>,
        filter: Option<String>,
        name: &str,
    ) -> Handover {
        Handover {
            inlet: Some(inlet),
            whole,
            delimiter,
            lines: Vec::new(),
            acks: Vec::new(),
            filter,
            warned: false,
            name: name.to_string(),
        }
    }

    /// A PUBLISH on `topic` with a payload of `len` bytes from `input`: handed over if
    /// `sub=` names the topic, else skipped, acknowledged and counted as dropped.
    pub fn message(
        &mut self,
        input: &mut impl Read,
        topic: &str,
        len: usize,
        pid: Option<u16>,
        ready: &mut Vec<u8>,
    ) -> io::Result<()> {
        if self.filter.as_deref().is_some_and(|f| matches(f, topic)) {
            return self.publish(input, len, pid, ready);
        }
        skip(input, len)?;
        if !self.warned {
            self.warned = true;
            let wanted = match &self.filter {
                Some(filter) => format!("sub={filter} does not match it"),
                None => "there is no sub=".into(),
            };
            log::warn!(
                "{}: a message on {} came from the broker, but {wanted} (a subscription \
                 kept by a persistent session from an earlier run?); dropped it and will \
                 drop any other (counted)",
                self.name,
                crate::escape::escape(topic.as_bytes())
            );
        }
        self.dropped(pid, ready);
        Ok(())
    }

    /// A message that will not be handed over: acknowledged in its turn, and counted.
    fn dropped(&mut self, pid: Option<u16>, ready: &mut Vec<u8>) {
        if let Some(pid) = pid {
            // PUBACKs go in the order the messages came: after the gathered ones'.
            match self.lines.is_empty() {
                true => codec::puback(ready, pid),
                false => codec::puback(&mut self.acks, pid),
            }
        }
        if let Some(inlet) = &mut self.inlet {
            inlet.missed(1);
        }
    }

    /// A PUBLISH payload of `len` bytes from `input`, with its packet id at QoS 1.
    /// PUBACKs that may go out now (for messages the bridge took) go to `ready`.
    pub fn publish(
        &mut self,
        input: &mut impl Read,
        len: usize,
        pid: Option<u16>,
        ready: &mut Vec<u8>,
    ) -> io::Result<()> {
        if self.inlet.is_none() {
            return skip(input, len);
        }
        if let Some(delimiter) = self.delimiter.as_deref().filter(|_| len <= self.whole) {
            let start = self.lines.len();
            self.lines.resize(start + len, 0);
            if let Err(e) = input.read_exact(&mut self.lines[start..]) {
                self.lines.truncate(start);
                return Err(e);
            }
            self.lines.extend_from_slice(delimiter);
            if memmem::find(&self.lines[start..], delimiter) == Some(len) {
                if let Some(pid) = pid {
                    codec::puback(&mut self.acks, pid);
                }
                if self.lines.len() >= GATHER {
                    self.flush(ready);
                }
                return Ok(());
            }
            // It holds the delimiter: a message of its own, after what was gathered.
            let payload = self.lines[start..start + len].to_vec();
            self.lines.truncate(start);
            self.flush(ready);
            return self.one(&mut &payload[..], len, pid, ready);
        }
        self.flush(ready);
        self.one(input, len, pid, ready)
    }

    /// Hands over what was gathered; PUBACKs for it go to `ready` if the bridge took it.
    pub fn flush(&mut self, ready: &mut Vec<u8>) {
        if self.lines.is_empty() {
            return;
        }
        match self.inlet.as_mut().is_some_and(|i| i.feed(&self.lines)) {
            true => ready.extend_from_slice(&self.acks),
            false => self.inlet = None,
        }
        self.lines.clear();
        self.acks.clear();
    }

    /// One message by itself: whole, or streamed through the framer if it is longer
    /// than a line may be.
    fn one(
        &mut self,
        input: &mut impl Read,
        len: usize,
        pid: Option<u16>,
        ready: &mut Vec<u8>,
    ) -> io::Result<()> {
        let Some(inlet) = self.inlet.as_mut() else {
            return skip(input, len);
        };
        let taken = if len <= self.whole {
            let mut payload = vec![0; len];
            input.read_exact(&mut payload)?;
            inlet.message(&payload)
        } else {
            let mut buf = vec![0; READ_BUFFER];
            let (mut left, mut taken) = (len, true);
            while left > 0 {
                let n = left.min(buf.len());
                if let Err(e) = input.read_exact(&mut buf[..n]) {
                    // Cut off: pieces that went on are ended, the rest forgotten.
                    inlet.drop_partial();
                    return Err(e);
                }
                left -= n;
                taken = taken && inlet.feed(&buf[..n]);
            }
            // The delimiter after what was fed (raw: nothing).
            taken && inlet.message(&[])
        };
        match (taken, pid) {
            (false, _) => self.inlet = None,
            (true, Some(pid)) => codec::puback(ready, pid),
            (true, None) => {}
        }
        Ok(())
    }

    /// The inlet, if the bridge still takes messages.
    fn into_inlet(mut self) -> Option<Box<dyn Inlet>> {
        self.inlet.take()
    }
}

/// The reader thread's state.
pub struct Reader {
    pub link: Arc<Link>,
    pub handover: Handover,
    /// The writer's queue, for acknowledgements.
    pub acks: Sender<Command>,
    /// How long the broker may stay silent, for the message when it did.
    pub silence: Duration,
    /// Dropped when the thread ends; the guard waits for that.
    pub done: Sender<()>,
}

impl Reader {
    /// The thread: `early` messages first, then packets until the connection ends.
    pub fn run<R: Read>(mut self, mut input: Input<R>, early: Vec<Early>) {
        let mut result = Ok(());
        let mut ready = Vec::new();
        for message in early {
            let Some(payload) = &message.payload else {
                self.handover.dropped(message.pid, &mut ready);
                continue;
            };
            let (len, topic) = (payload.len(), &message.topic);
            result = self
                .handover
                .message(&mut &payload[..], topic, len, message.pid, &mut ready);
        }
        if result.is_ok() {
            result = self.read(&mut input, ready);
        }
        let Err(error) = result else { return };
        // What arrived whole goes on; its acknowledgements cannot any more.
        self.handover.flush(&mut Vec::new());
        let error = match error.kind() {
            io::ErrorKind::ConnectionReset => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the broker closed the connection",
            ),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer from the broker for {} s (keepalive)",
                    self.silence.as_secs()
                ),
            ),
            _ => error,
        };
        let first = self
            .link
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.link.kill();
        let stopping = self.link.stopping.load(Ordering::Acquire);
        match self.handover.into_inlet() {
            Some(inlet) if !stopping => inlet.fail(first.unwrap_or(error)),
            _ => {}
        }
        drop(self.done);
    }

    /// Reads packets until the connection ends, which is always an error here.
    fn read<R: Read>(&mut self, input: &mut Input<R>, mut ready: Vec<u8>) -> io::Result<()> {
        loop {
            if input.buffered() == 0 {
                // The next read may wait: hand over what was gathered first.
                self.handover.flush(&mut ready);
            }
            if !ready.is_empty() {
                // Fails only once the writer is gone, and the connection with it.
                let _ = self.acks.send(Command::Write(std::mem::take(&mut ready)));
            }
            let Some(header) = codec::read_header(input)? else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the broker closed the connection",
                ));
            };
            match header.kind {
                kind::PUBLISH => {
                    let publish = codec::read_publish(input, header)?;
                    let (len, pid, topic) = (publish.payload, publish.pid, &publish.topic);
                    self.handover.message(input, topic, len, pid, &mut ready)?;
                }
                kind::PUBACK => {
                    let pid = codec::pid(&codec::read_body(input, header)?)?;
                    if let Some(session) = &self.link.session {
                        session.ack(pid);
                    }
                }
                kind::PINGRESP | kind::SUBACK => {
                    codec::read_body(input, header)?;
                }
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected type {other} packet from the broker"),
                    ));
                }
            }
        }
    }
}

/// Reads and forgets `len` bytes.
fn skip(input: &mut impl Read, len: usize) -> io::Result<()> {
    let skipped = io::copy(&mut input.take(len as u64), &mut io::sink())?;
    match skipped == len as u64 {
        true => Ok(()),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What an inlet was given, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Feed(Vec<u8>),
        Message(Vec<u8>),
    }

    struct Record(Arc<Mutex<Vec<Call>>>);

    impl Inlet for Record {
        fn feed(&mut self, data: &[u8]) -> bool {
            self.0.lock().unwrap().push(Call::Feed(data.to_vec()));
            true
        }
        fn message(&mut self, data: &[u8]) -> bool {
            self.0.lock().unwrap().push(Call::Message(data.to_vec()));
            true
        }
        fn end_line(&mut self) -> bool {
            true
        }
        fn feed_now(&mut self, data: &[u8]) -> bool {
            self.feed(data)
        }
        fn missed(&mut self, _: u64) {}
        fn drop_partial(&mut self) {}
        fn fail(self: Box<Self>, _: io::Error) {}
    }

    /// Hands every PUBLISH of `stream` over, as the reader does when all of it is
    /// buffered at once; returns the inlet's calls and the PUBACKs.
    fn hand(stream: &[u8], whole: usize, delimiter: Option<&[u8]>) -> (Vec<Call>, Vec<u8>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let inlet = Box::new(Record(Arc::clone(&calls)));
        let filter = Some("#".to_string());
        let delimiter = delimiter.map(<[u8]>::to_vec);
        let mut handover = Handover::new(inlet, whole, delimiter, filter, "mqtt://test");
        let mut input = Input::new(stream, Vec::new());
        let mut ready = Vec::new();
        while let Some(header) = codec::read_header(&mut input).unwrap() {
            let publish = codec::read_publish(&mut input, header).unwrap();
            let (len, pid) = (publish.payload, publish.pid);
            handover.publish(&mut input, len, pid, &mut ready).unwrap();
        }
        handover.flush(&mut ready);
        let calls = calls.lock().unwrap().clone();
        (calls, ready)
    }

    fn publishes(payloads: &[(&[u8], u8, u16)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (payload, qos, pid) in payloads {
            codec::publish(&mut out, "t", payload, *qos, *pid, false);
        }
        out
    }

    fn acks(pids: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        pids.iter().for_each(|&pid| codec::puback(&mut out, pid));
        out
    }

    #[test]
    fn buffered_messages_go_in_one_feed_and_are_acknowledged_after_it() {
        let stream = publishes(&[(b"a", 1, 1), (b"", 0, 0), (b"b\xff", 1, 2)]);
        let (calls, ready) = hand(&stream, 4096, Some(b"\n"));
        assert_eq!(calls, [Call::Feed(b"a\n\nb\xff\n".to_vec())]);
        assert_eq!(ready, acks(&[1, 2]));
    }

    #[test]
    fn a_message_holding_the_delimiter_goes_by_itself_in_order() {
        let stream = publishes(&[(b"a", 1, 1), (b"x\ny", 1, 2), (b"c", 1, 3)]);
        let (calls, ready) = hand(&stream, 4096, Some(b"\n"));
        assert_eq!(
            calls,
            [
                Call::Feed(b"a\n".to_vec()),
                Call::Message(b"x\ny".to_vec()),
                Call::Feed(b"c\n".to_vec()),
            ]
        );
        assert_eq!(ready, acks(&[1, 2, 3]));
        // "xa" + "aa" holds "aa" before its end: framed, it would split wrongly.
        let (calls, _) = hand(&publishes(&[(b"xa", 0, 0)]), 4096, Some(b"aa"));
        assert_eq!(calls, [Call::Message(b"xa".to_vec())]);
    }

    #[test]
    fn raw_and_long_messages_go_by_themselves() {
        let stream = publishes(&[(b"one", 0, 0), (b"two", 0, 0)]);
        let (calls, _) = hand(&stream, 4096, None);
        assert_eq!(
            calls,
            [
                Call::Message(b"one".to_vec()),
                Call::Message(b"two".to_vec())
            ]
        );
        let long = vec![b'z'; 3 * READ_BUFFER];
        let (calls, _) = hand(&publishes(&[(&long, 0, 0)]), 100, Some(b"\n"));
        let fed: Vec<u8> = calls
            .iter()
            .flat_map(|c| match c {
                Call::Feed(d) => d.clone(),
                Call::Message(d) => [d.as_slice(), b"\n"].concat(),
            })
            .collect();
        assert_eq!(fed, [long.as_slice(), b"\n"].concat());
        assert_eq!(calls.last(), Some(&Call::Message(Vec::new())));
    }

    #[test]
    fn what_arrives_before_the_suback_is_kept_up_to_a_bound() {
        let big = vec![b'x'; EARLY_LIMIT / 2 + 1];
        let stream = publishes(&[
            (&big, 1, 1),
            (b"small", 1, 2),
            (&big, 1, 3),
            (b"late", 0, 0),
        ]);
        let mut input = &stream[..];
        let mut kept = 0;
        let mut early = Vec::new();
        while let Some(header) = codec::read_header(&mut input).unwrap() {
            early.push(Early::read(&mut input, header, &mut kept).unwrap());
        }
        let held: Vec<Option<usize>> = early
            .iter()
            .map(|e| e.payload.as_ref().map(Vec::len))
            .collect();
        // The second big one would go past the bound: it, and what follows, are dropped.
        assert_eq!(held, [Some(big.len()), Some(5), None, None]);
        assert!(input.is_empty());
        // Dropped ones are still acknowledged, in their turn, and counted.
        let calls = Arc::new(Mutex::new(Vec::new()));
        let inlet = Box::new(Record(Arc::clone(&calls)));
        let mut handover = Handover::new(
            inlet,
            big.len(),
            Some(b"\n".to_vec()),
            Some("t".into()),
            "m",
        );
        let mut ready = Vec::new();
        for e in &early {
            match &e.payload {
                Some(p) => handover
                    .message(&mut &p[..], &e.topic, p.len(), e.pid, &mut ready)
                    .unwrap(),
                None => handover.dropped(e.pid, &mut ready),
            }
        }
        handover.flush(&mut ready);
        assert_eq!(ready, acks(&[1, 2, 3]));
    }

    #[test]
    fn input_serves_leftover_then_the_reader_and_tells_what_it_holds() {
        let mut input = Input::new(&b"cdef"[..], b"ab".to_vec());
        assert_eq!(input.buffered(), 2);
        let mut two = [0; 2];
        input.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"ab");
        assert_eq!(input.buffered(), 0);
        input.read_exact(&mut two).unwrap();
        assert_eq!((&two, input.buffered()), (b"cd", 2));
    }
}
