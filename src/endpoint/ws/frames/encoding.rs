//! How a batch's pieces go out as frames: one message per line (per piece with
//! `--raw`), without its delimiter; a text frame if it is valid UTF-8, a binary one
//! otherwise; a piece that does not end its line starts or continues a fragmented
//! message; a piece over [`MAX_FRAME`] cut into several frames. A client masks every
//! frame. No I/O here: the writer, the hello and a straight write put these bytes on
//! the socket.

use std::time::Instant;

use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::{Conn, MAX_FRAME};
use crate::endpoint::ws::rules::Role;
use crate::framing::{Batch, Framing};

/// The bytes a frame's head takes, for the length of a short piece: two, and six more
/// for a masked one up to 64 KiB.
const FRAME_HEAD: usize = 8;

impl Conn {
    /// `batch` as it goes on the wire: each piece's frames (see [`Conn::frames`]), as
    /// one piece of the result, so that what of it a socket does not take counts the
    /// pieces not all out.
    pub(super) fn wire(&self, batch: &Batch, open: &mut bool) -> Batch {
        batch.map(FRAME_HEAD * batch.pieces(), |piece, wire| {
            for frame in self.frames(piece, open) {
                frame.format(wire).expect("a Vec takes every byte");
            }
        })
    }

    /// The frames for one piece: one, or a piece over [`MAX_FRAME`] cut into several,
    /// so that a peer with the same limit takes it.
    pub(super) fn frames<'a>(
        &'a self,
        piece: &'a [u8],
        open: &'a mut bool,
    ) -> impl Iterator<Item = Frame> + 'a {
        let (data, last) = self.strip(piece);
        let chunks = data.len().div_ceil(MAX_FRAME).max(1);
        (0..chunks).map(move |i| {
            let chunk =
                &data[(i * MAX_FRAME).min(data.len())..((i + 1) * MAX_FRAME).min(data.len())];
            let end = last && i + 1 == chunks;
            self.frame_of(chunk, end, data, open)
        })
    }

    /// A line's data and whether the piece ends the line.
    fn strip<'a>(&self, piece: &'a [u8]) -> (&'a [u8], bool) {
        match &self.framing {
            Framing::Lines { delimiter, .. } => match piece.strip_suffix(delimiter.as_slice()) {
                Some(line) => (line, true),
                None => (piece, false),
            },
            Framing::Raw => (piece, true),
        }
    }

    /// One frame of `chunk`, part of `whole`; `last` if it ends the message.
    fn frame_of(&self, chunk: &[u8], last: bool, whole: &[u8], open: &mut bool) -> Frame {
        let opcode = match (
            *open,
            last && chunk.len() == whole.len() && std::str::from_utf8(whole).is_ok(),
        ) {
            (true, _) => Data::Continue,
            (false, true) => Data::Text,
            (false, false) => Data::Binary,
        };
        *open = !last;
        self.masked(Frame::message(chunk.to_vec(), OpCode::Data(opcode), last))
    }

    /// A client masks every frame it sends (RFC 6455 5.3); a server never does.
    pub(super) fn masked(&self, mut frame: Frame) -> Frame {
        if self.role == Role::Client {
            frame.header_mut().mask = Some(random_mask());
        }
        frame
    }
}

/// Four unpredictable bytes, from the standard library's per-process random hash keys.
fn random_mask() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    let bits = hasher.finish();
    (bits as u32).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::endpoint::tls::wire::Wire;

    impl Conn {
        /// The frame for one piece no longer than [`MAX_FRAME`].
        fn frame(&self, piece: &[u8], open: &mut bool) -> Frame {
            let (data, last) = self.strip(piece);
            self.frame_of(data, last, data, open)
        }
    }

    fn conn(framing: Framing) -> Conn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream =
            Wire::plain(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        Conn::new(
            Role::Server,
            "peer".into(),
            &framing,
            Duration::from_secs(30),
            &stream,
        )
        .unwrap()
    }

    fn describe(frame: &Frame) -> (OpCode, bool, Vec<u8>) {
        let h = frame.header();
        (h.opcode, h.is_final, frame.payload().to_vec())
    }

    #[test]
    fn lines_lose_their_delimiter_and_cut_pieces_become_fragments() {
        let c = conn(Framing::default());
        let mut open = false;
        let text = OpCode::Data(Data::Text);
        let binary = OpCode::Data(Data::Binary);
        let more = OpCode::Data(Data::Continue);
        assert_eq!(
            describe(&c.frame(b"hi\r\n", &mut open)),
            (text, true, b"hi\r".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"\xff\n", &mut open)),
            (binary, true, b"\xff".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"abc", &mut open)),
            (binary, false, b"abc".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"def", &mut open)),
            (more, false, b"def".to_vec())
        );
        assert_eq!(
            describe(&c.frame(b"g\n", &mut open)),
            (more, true, b"g".to_vec())
        );
        assert!(!open);
        assert_eq!(
            describe(&c.frame(b"\n", &mut open)),
            (text, true, b"".to_vec())
        );
    }

    #[test]
    fn raw_pieces_are_whole_messages() {
        let c = conn(Framing::Raw);
        let mut open = false;
        let (opcode, last, data) = describe(&c.frame(b"a\nb", &mut open));
        assert_eq!(
            (opcode, last, data),
            (OpCode::Data(Data::Text), true, b"a\nb".to_vec())
        );
    }

    #[test]
    fn masks_differ() {
        assert_ne!(
            (0..8)
                .map(|_| random_mask())
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
    }
}
