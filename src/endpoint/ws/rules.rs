//! What RFC 6455 forbids in the frames a peer sends: the checks that fail a
//! WebSocket connection (see [`super::frames`] for what follows).

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Which end of the connection this is: a client masks what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `ws://`: we connected.
    Client,
    /// A client of `ws-listen://`: it connected to us.
    Server,
}

/// The longest control frame (ping, pong, close) RFC 6455 allows.
const MAX_CONTROL: usize = 125;

/// What breaks RFC 6455 in a frame that the `role` end received, with this `header`
/// and `len` bytes of payload, `open` telling whether a data message is under way; the
/// connection then fails (close code 1002).
pub fn broken(role: Role, header: &FrameHeader, len: usize, open: bool) -> Option<&'static str> {
    let masked = header.mask.is_some();
    match header.opcode {
        _ if header.rsv1 || header.rsv2 || header.rsv3 => {
            Some("reserved bits set, and no extension was agreed")
        }
        _ if masked && role == Role::Client => Some("a masked frame from the server"),
        _ if !masked && role == Role::Server => Some("an unmasked frame from a client"),
        OpCode::Control(_) if !header.is_final || len > MAX_CONTROL => {
            Some("a control frame longer than 125 bytes, or in pieces")
        }
        OpCode::Data(Data::Continue) if !open => {
            Some("a continuation frame with no message under way")
        }
        OpCode::Data(Data::Text | Data::Binary) if open => {
            Some("a new message before the last one ended")
        }
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
            Some("unknown opcode")
        }
        _ => None,
    }
}

/// What is wrong with a close frame's body (RFC 6455 5.5.1 and 7.4), if anything: a
/// lone byte, a status code nobody may send, or a reason that is not UTF-8.
pub fn bad_close(body: &[u8]) -> Option<(CloseCode, &'static str)> {
    let code = match body {
        [] => return None,
        [_] => return Some((CloseCode::Protocol, "a close frame with a one-byte body")),
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
    };
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return Some((
            CloseCode::Protocol,
            "a close frame with a code nobody may send",
        ));
    }
    if std::str::from_utf8(&body[2..]).is_err() {
        return Some((CloseCode::Invalid, "a close reason that is not UTF-8"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_bodies_are_checked() {
        assert_eq!(bad_close(b""), None);
        assert_eq!(bad_close(b"\x03\xe8bye"), None);
        assert_eq!(bad_close(b"\x0f\xa0"), None); // 4000, private use
        for bad in [&b"\x03"[..], b"\x03\xed", b"\x00\x00", b"\x13\x88"] {
            assert_eq!(
                bad_close(bad).map(|b| b.0),
                Some(CloseCode::Protocol),
                "{bad:?}"
            );
        }
        assert_eq!(
            bad_close(b"\x03\xe8\xff").map(|b| b.0),
            Some(CloseCode::Invalid)
        );
    }
}
