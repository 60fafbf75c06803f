//! The MQTT 3.1.1 packets the endpoint sends and receives, encoded and decoded by hand.
//!
//! A client that bridges lines needs nine packets: it sends CONNECT, PUBLISH, PUBACK,
//! SUBSCRIBE, PINGREQ and DISCONNECT, and receives CONNACK, PUBLISH, PUBACK, SUBACK and
//! PINGRESP. Encoding appends to a `Vec<u8>`, so a whole batch of PUBLISH packets
//! becomes one buffer and one write. Decoding reads a fixed header from any
//! [`std::io::Read`] and then only as many bytes as that header announces; every length
//! is checked before it is used, so a malformed packet is an error, never a panic or
//! an allocation of what a hostile peer asks for. A PUBLISH payload is not read here:
//! the caller streams it ([`Publish::payload`] bytes follow the header it returns).
//!
//! Payloads are bytes and are never looked at. Topic names and filters are UTF-8, as
//! the protocol requires, and are checked when the command line is parsed.

use std::io::{self, Read};

/// The word retained on the status topic while the bridge is connected.
pub const ONLINE: &[u8] = b"online";

/// The word retained on the status topic once it is not: the will, and the goodbye.
pub const OFFLINE: &[u8] = b"offline";

/// Packet types, the high nibble of a fixed header's first byte.
pub mod kind {
    /// Client to server: open a session.
    pub const CONNECT: u8 = 1;
    /// Server to client: the answer to CONNECT.
    pub const CONNACK: u8 = 2;
    /// Either way: a message.
    pub const PUBLISH: u8 = 3;
    /// Either way: a QoS 1 message arrived.
    pub const PUBACK: u8 = 4;
    /// Client to server: ask for messages on a filter.
    pub const SUBSCRIBE: u8 = 8;
    /// Server to client: the answer to SUBSCRIBE.
    pub const SUBACK: u8 = 9;
    /// Client to server: still here.
    pub const PINGREQ: u8 = 12;
    /// Server to client: the answer to PINGREQ.
    pub const PINGRESP: u8 = 13;
    /// Client to server: a clean goodbye, which cancels the will.
    pub const DISCONNECT: u8 = 14;
}

/// The largest remaining length the protocol can express (four length bytes).
pub const MAX_REMAINING: usize = 268_435_455;

/// The longest packet other than PUBLISH that a server sends us: a SUBACK for one
/// filter is 3 bytes. Anything much longer is a broken or hostile peer.
const MAX_CONTROL: usize = 64;

/// A PINGREQ packet.
pub const PINGREQ: [u8; 2] = [kind::PINGREQ << 4, 0];

/// A DISCONNECT packet.
pub const DISCONNECT: [u8; 2] = [kind::DISCONNECT << 4, 0];

/// The DUP flag of a PUBLISH's first byte: this is a resend.
pub const DUP: u8 = 0b1000;

/// What CONNECT carries.
#[derive(Debug, Clone)]
pub struct Connect<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// Seconds between packets before the server may drop us.
    pub keepalive: u16,
    /// Start afresh (true) or resume the stored session (false).
    pub clean_session: bool,
    /// Topic, payload, QoS and retain of the last will.
    pub will: Option<(&'a str, &'a [u8], u8, bool)>,
    /// User name.
    pub user: Option<&'a str>,
    /// Password (sent only with a user name, as the protocol requires).
    pub password: Option<&'a [u8]>,
}

/// Appends the remaining-length encoding of `len` (at most [`MAX_REMAINING`]).
fn remaining_length(out: &mut Vec<u8>, mut len: usize) {
    debug_assert!(len <= MAX_REMAINING, "callers check the length");
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

/// Appends a length-prefixed string or byte field.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("fields are checked to fit 65535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The length of a field: its two-byte prefix and its bytes.
fn field_len(bytes: &[u8]) -> usize {
    2 + bytes.len()
}

/// Appends a CONNECT packet.
pub fn connect(out: &mut Vec<u8>, c: &Connect<'_>) {
    let mut flags = 0u8;
    let mut len = field_len(b"MQTT") + 1 + 1 + 2 + field_len(c.client_id.as_bytes());
    if c.clean_session {
        flags |= 0b10;
    }
    if let Some((topic, payload, qos, retain)) = c.will {
        flags |= 0b100 | (qos << 3) | (u8::from(retain) << 5);
        len += field_len(topic.as_bytes()) + field_len(payload);
    }
    if let Some(user) = c.user {
        flags |= 0x80;
        len += field_len(user.as_bytes());
        if let Some(password) = c.password {
            flags |= 0x40;
            len += field_len(password);
        }
    }
    out.push(kind::CONNECT << 4);
    remaining_length(out, len);
    field(out, b"MQTT");
    out.push(4); // protocol level 4: MQTT 3.1.1
    out.push(flags);
    out.extend_from_slice(&c.keepalive.to_be_bytes());
    field(out, c.client_id.as_bytes());
    if let Some((topic, payload, _, _)) = c.will {
        field(out, topic.as_bytes());
        field(out, payload);
    }
    if let Some(user) = c.user {
        field(out, user.as_bytes());
        if let Some(password) = c.password {
            field(out, password);
        }
    }
}

/// Appends a PUBLISH packet; `pid` is used at QoS 1 only.
///
/// A line is at most `--max-line` (64 MiB) plus its delimiter, or one read with
/// `--raw`: far below the protocol's limit of 256 MiB.
pub fn publish(out: &mut Vec<u8>, topic: &str, payload: &[u8], qos: u8, pid: u16, retain: bool) {
    let len = field_len(topic.as_bytes()) + if qos > 0 { 2 } else { 0 } + payload.len();
    assert!(len <= MAX_REMAINING, "a line fits in one PUBLISH");
    out.push((kind::PUBLISH << 4) | (qos << 1) | u8::from(retain));
    remaining_length(out, len);
    field(out, topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&pid.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Appends a PUBACK for `pid`.
pub fn puback(out: &mut Vec<u8>, pid: u16) {
    out.extend_from_slice(&[kind::PUBACK << 4, 2]);
    out.extend_from_slice(&pid.to_be_bytes());
}

/// Appends a SUBSCRIBE for one `filter` at `qos`.
pub fn subscribe(out: &mut Vec<u8>, pid: u16, filter: &str, qos: u8) {
    out.push((kind::SUBSCRIBE << 4) | 0b10);
    remaining_length(out, 2 + field_len(filter.as_bytes()) + 1);
    out.extend_from_slice(&pid.to_be_bytes());
    field(out, filter.as_bytes());
    out.push(qos);
}

/// A fixed header: the packet's type, its flags and how many bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// One of [`kind`].
    pub kind: u8,
    /// The low nibble of the first byte.
    pub flags: u8,
    /// Bytes after the fixed header.
    pub len: usize,
}

/// A malformed packet.
fn malformed(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed packet from the broker: {why}"),
    )
}

/// Reads one byte; `None` at EOF.
fn byte(r: &mut impl Read) -> io::Result<Option<u8>> {
    let mut b = [0u8];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads a fixed header. `Ok(None)` is a clean end: EOF before a packet began.
pub fn read_header(r: &mut impl Read) -> io::Result<Option<Header>> {
    let Some(first) = byte(r)? else {
        return Ok(None);
    };
    let mut len = 0usize;
    for shift in [0, 7, 14, 21] {
        let b = byte(r)?.ok_or_else(|| malformed("cut off in its length"))?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(Some(Header {
                kind: first >> 4,
                flags: first & 0x0f,
                len,
            }));
        }
    }
    Err(malformed("a length of more than four bytes"))
}

/// Reads the rest of a packet other than PUBLISH, which is short.
pub fn read_body(r: &mut impl Read, header: Header) -> io::Result<Vec<u8>> {
    if header.len > MAX_CONTROL {
        return Err(malformed(&format!(
            "a type {} packet of {} bytes",
            header.kind, header.len
        )));
    }
    let mut body = vec![0; header.len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// A CONNACK: whether the server kept a session for us, and its return code.
pub fn connack(body: &[u8]) -> io::Result<(bool, u8)> {
    match body {
        [flags, code] => Ok((flags & 1 == 1, *code)),
        _ => Err(malformed("a CONNACK that is not 2 bytes")),
    }
}

/// A packet identifier alone (PUBACK), or first (SUBACK).
pub fn pid(body: &[u8]) -> io::Result<u16> {
    match body {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(malformed("a packet identifier cut off")),
    }
}

/// What precedes a PUBLISH's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The topic it was published on.
    pub topic: String,
    /// 0 or 1 (2 is refused: we never subscribe at QoS 2).
    pub qos: u8,
    /// Its packet identifier, at QoS 1.
    pub pid: Option<u16>,
    /// Bytes of payload that follow.
    pub payload: usize,
}

/// Reads a PUBLISH's topic and packet identifier; its payload follows in `r`.
pub fn read_publish(r: &mut impl Read, header: Header) -> io::Result<Publish> {
    let qos = (header.flags >> 1) & 0b11;
    if qos > 1 {
        return Err(malformed(&format!("a PUBLISH at QoS {qos}")));
    }
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let topic_len = usize::from(u16::from_be_bytes(len));
    let id_len = if qos > 0 { 2 } else { 0 };
    let Some(payload) = header.len.checked_sub(2 + topic_len + id_len) else {
        return Err(malformed("a PUBLISH shorter than its topic"));
    };
    let mut topic = vec![0; topic_len];
    r.read_exact(&mut topic)?;
    let topic = String::from_utf8(topic).map_err(|_| malformed("a topic that is not UTF-8"))?;
    let pid = if qos > 0 {
        let mut id = [0u8; 2];
        r.read_exact(&mut id)?;
        Some(u16::from_be_bytes(id))
    } else {
        None
    };
    Ok(Publish {
        topic,
        qos,
        pid,
        payload,
    })
}

/// What CONNACK's return code means, for the one-line error.
pub fn refusal(code: u8) -> String {
    let why = match code {
        1 => "it does not speak MQTT 3.1.1",
        2 => "it rejected the client id (set another with client-id=)",
        3 => "the MQTT service is unavailable",
        4 => "bad user name or password (check mqtt://USER@HOST and password-file=)",
        5 => "not authorised (check the broker's users and ACLs)",
        _ => "an unknown reason",
    };
    format!("the broker refused the connection: {why} (code {code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> io::Result<Option<Header>> {
        read_header(&mut &bytes[..])
    }

    #[test]
    fn remaining_lengths_at_each_size_boundary() {
        for (len, encoded) in [
            (0usize, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xff, 0xff, 0x7f]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (MAX_REMAINING, vec![0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            remaining_length(&mut out, len);
            assert_eq!(out, encoded, "{len}");
            let mut packet = vec![0x30];
            packet.extend_from_slice(&out);
            assert_eq!(header(&packet).unwrap().unwrap().len, len);
        }
    }

    #[test]
    fn headers_that_are_cut_off_or_too_long_are_errors() {
        assert_eq!(header(b"").unwrap(), None);
        assert!(header(&[0x30]).is_err());
        assert!(header(&[0x30, 0x80]).is_err());
        assert!(header(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn connect_matches_the_specification_example() {
        let mut out = Vec::new();
        connect(
            &mut out,
            &Connect {
                client_id: "id",
                keepalive: 30,
                clean_session: false,
                will: Some(("s", b"offline", 1, true)),
                user: Some("u"),
                password: Some(b"pw"),
            },
        );
        let mut expected = vec![0x10, 33, 0, 4, b'M', b'Q', b'T', b'T', 4];
        expected.push(0x80 | 0x40 | 0x20 | 0x08 | 0x04);
        expected.extend_from_slice(&[0, 30, 0, 2, b'i', b'd', 0, 1, b's', 0, 7]);
        expected.extend_from_slice(b"offline");
        expected.extend_from_slice(&[0, 1, b'u', 0, 2, b'p', b'w']);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_password_without_a_user_is_not_sent() {
        let mut out = Vec::new();
        connect(
            &mut out,
            &Connect {
                client_id: "",
                keepalive: 1,
                clean_session: true,
                will: None,
                user: None,
                password: Some(b"secret"),
            },
        );
        assert_eq!(out[9], 0b10);
        assert!(!out.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn publish_round_trips_with_any_payload_bytes() {
        let payload = b"\x00\xff\xfe\n\r not utf-8 \xc3\x28";
        for (qos, pid, retain) in [(0, 0, false), (1, 513, true)] {
            let mut out = Vec::new();
            publish(&mut out, "lab/uno1", payload, qos, pid, retain);
            assert_eq!(out[0] & 1, u8::from(retain));
            let mut r = &out[..];
            let h = read_header(&mut r).unwrap().unwrap();
            assert_eq!(h.kind, kind::PUBLISH);
            let p = read_publish(&mut r, h).unwrap();
            assert_eq!(p.topic, "lab/uno1");
            assert_eq!(p.qos, qos);
            assert_eq!(p.pid, (qos > 0).then_some(pid));
            assert_eq!(p.payload, payload.len());
            assert_eq!(r, payload);
        }
    }

    #[test]
    fn malformed_publishes_are_errors() {
        // QoS 2, which we never ask for.
        let mut r: &[u8] = &[0, 1, b't'];
        let h = Header {
            kind: kind::PUBLISH,
            flags: 0b100,
            len: 3,
        };
        assert!(read_publish(&mut r, h).is_err());
        // A topic longer than the packet.
        let mut r: &[u8] = &[0, 9, b't'];
        let h = Header {
            kind: kind::PUBLISH,
            flags: 0,
            len: 3,
        };
        assert!(read_publish(&mut r, h).is_err());
        // A topic that is not UTF-8.
        let mut r: &[u8] = &[0, 1, 0xff];
        assert!(read_publish(&mut r, h).is_err());
    }

    #[test]
    fn control_packets() {
        let mut out = Vec::new();
        puback(&mut out, 0x1234);
        assert_eq!(out, [0x40, 2, 0x12, 0x34]);
        let mut out = Vec::new();
        subscribe(&mut out, 7, "a/#", 1);
        assert_eq!(out, [0x82, 8, 0, 7, 0, 3, b'a', b'/', b'#', 1]);
        assert_eq!(connack(&[1, 0]).unwrap(), (true, 0));
        assert_eq!(connack(&[0, 4]).unwrap(), (false, 4));
        assert!(connack(&[0]).is_err());
        assert_eq!(pid(&[0, 7, 1]).unwrap(), 7);
        assert!(pid(&[0]).is_err());
        let huge = Header {
            kind: kind::SUBACK,
            flags: 0,
            len: 1 << 20,
        };
        assert!(read_body(&mut &[0u8; 8][..], huge).is_err());
        assert!(refusal(4).contains("bad user name or password"));
    }
}
