//! A server's straight writes to a WebSocket client: the thread handing a batch over
//! writes its frames to the socket itself when the writer is not writing, taking the
//! [`Pen`](super::Pen) only if it is free. What the socket does not take, perhaps
//! from mid-frame, is owed: the writer writes it before anything else.

use super::Conn;
use crate::endpoint::listen::Voice;
use crate::framing::Batch;

/// A server's straight writes: the same wire bytes its writer would write (the same
/// [`Conn::wire`], with the same continuation state), with the pen held, tried and
/// never waited for. A console page gets none (see `ws/server.rs`).
impl Voice for Conn {
    fn speak(&self, batch: &Batch, send: &mut dyn FnMut(&[u8]) -> usize) -> Option<Batch> {
        let mut pen = self.pen.try_lock().ok()?;
        if pen.cut {
            return None;
        }
        let open = pen.open;
        let mut wire = self.wire(batch, &mut pen.open);
        let sent = send(wire.bytes());
        if sent == 0 {
            // Nothing went: the writer frames the batch itself, from where it began.
            pen.open = open;
            return None;
        }
        wire.advance(sent);
        pen.cut = !wire.is_empty();
        Some(wire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    use tungstenite::protocol::frame::{Frame, FrameSocket};

    use super::*;
    use crate::endpoint::listen::{Earlier, Parcel};
    use crate::endpoint::tls::wire::Wire;
    use crate::endpoint::ws::rules::Role;
    use crate::framing::Framing;

    fn describe(frame: &Frame) -> (OpCode, bool, Vec<u8>) {
        let h = frame.header();
        (h.opcode, h.is_final, frame.payload().to_vec())
    }

    /// A server connection on a connected pair: (its conn, our socket, the client's).
    fn server() -> (Arc<Conn>, std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let ours = listener.accept().unwrap().0;
        let framing = Framing::default();
        let keepalive = Duration::from_secs(30);
        let wire = Wire::plain(ours.try_clone().unwrap());
        let conn = Conn::new(Role::Server, "peer".into(), &framing, keepalive, &wire).unwrap();
        (Arc::new(conn), ours, theirs)
    }

    /// Every frame the client reads until the server closes: (opcode, final, payload).
    fn frames_read(theirs: std::net::TcpStream) -> Vec<(OpCode, bool, Vec<u8>)> {
        let mut socket = FrameSocket::new(theirs);
        let mut frames = Vec::new();
        while let Some(frame) = socket.read(None).expect("whole frames, one after another") {
            let last = describe(&frame);
            frames.push(last.clone());
            if last.0 == OpCode::Control(Control::Close) {
                break;
            }
        }
        frames
    }

    #[test]
    fn straight_writes_are_the_writers_frames_and_stop_while_a_rest_is_owed() {
        let (conn, _ours, _theirs) = server();
        let pieces: [&[u8]; 5] = [b"one\n", b"abc", b"def\n", b"\xff\n", b"two\n"];
        // What the writer would write for them all, from a fresh start.
        let want = conn.wire(&Batch::of(&pieces), &mut false);
        let mut got = Vec::new();
        // All of it taken: nothing left, and a message left open (abc...).
        let all = conn.speak(&Batch::of(&pieces[..2]), &mut |bytes| {
            got.extend_from_slice(bytes);
            bytes.len()
        });
        assert_eq!(all.map(|rest| rest.is_empty()), Some(true));
        assert!(conn.pen().open && !conn.pen().cut);
        // Nothing taken: nothing went, as if never tried.
        let none = conn.speak(&Batch::of(&pieces[2..4]), &mut |_| 0);
        assert!(none.is_none() && conn.pen().open);
        // The writer holds the pen: not even tried.
        {
            let _writing = conn.pen();
            assert!(
                conn.speak(&Batch::of(&pieces[2..4]), &mut |_| panic!("tried"))
                    .is_none()
            );
        }
        // Part taken, mid-frame: the rest, framed, is owed, and nothing else goes.
        let rest = conn
            .speak(&Batch::of(&pieces[2..4]), &mut |bytes| {
                got.extend_from_slice(&bytes[..3]);
                3
            })
            .expect("a rest");
        assert_eq!(rest.pieces(), 2);
        assert!(conn.pen().cut);
        assert!(
            conn.speak(&Batch::of(&pieces[4..]), &mut |_| panic!("tried"))
                .is_none()
        );
        got.extend_from_slice(rest.bytes());
        got.extend_from_slice(
            conn.wire(&Batch::of(&pieces[4..]), &mut conn.pen().open)
                .bytes(),
        );
        assert_eq!(got, want.bytes());
    }

    #[cfg(unix)]
    #[test]
    fn a_control_frame_never_lands_inside_a_frame_a_straight_write_left_unfinished() {
        use crate::endpoint::listen::Shipment;
        use crate::endpoint::unix::WriteNow;
        let (conn, ours, theirs) = server();
        let now = WriteNow::socket(ours.try_clone().unwrap().into());
        // Far more than the socket takes while its client does not read: a straight
        // write stops somewhere inside, the line of a message left open last.
        let lines: Vec<Vec<u8>> = (0..200_000)
            .map(|i| format!("{i:031}\n").into_bytes())
            .collect();
        let mut big: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        big.push(b"open ");
        let rest = conn
            .speak(&Batch::of(&big), &mut |bytes| now.write_what_fits(bytes))
            .expect("a part went");
        assert!(!rest.is_empty() && conn.pen().cut);
        // A pong to send before the rest is even queued: the writer must wait for it.
        let (queue, parcels) = crossbeam_channel::bounded(8);
        conn.control.0.send(Frame::pong(b"p".to_vec())).unwrap();
        let writing = Arc::clone(&conn);
        let wire = Wire::plain(ours.try_clone().unwrap());
        let writer = std::thread::spawn(move || writing.write(wire, Earlier::default(), parcels));
        let reader = std::thread::spawn(move || frames_read(theirs));
        std::thread::sleep(Duration::from_millis(50));
        let pending = Arc::default();
        queue
            .send(Parcel::new(Shipment::framed(rest, None), &pending))
            .unwrap();
        // Behind it, a batch the writer frames itself, which ends the open message.
        queue
            .send(Parcel::new(
                Shipment::new(Batch::of(&[b"end\n"]), None),
                &pending,
            ))
            .unwrap();
        drop(queue);
        writer.join().unwrap().unwrap();
        let frames = reader.join().unwrap();
        let text = OpCode::Data(Data::Text);
        let mut want: Vec<_> = lines
            .iter()
            .map(|line| (text, true, line[..31].to_vec()))
            .collect();
        want.push((OpCode::Data(Data::Binary), false, b"open ".to_vec()));
        want.push((OpCode::Data(Data::Continue), true, b"end".to_vec()));
        let pong = (OpCode::Control(Control::Pong), true, b"p".to_vec());
        let close = frames.last().unwrap().clone();
        assert_eq!(close.0, OpCode::Control(Control::Close));
        // The pong came between two frames, after the rest (it waited for it).
        let at = frames.iter().position(|f| *f == pong).expect("the pong");
        let data: Vec<_> = frames[..frames.len() - 1]
            .iter()
            .filter(|f| **f != pong)
            .cloned()
            .collect();
        assert_eq!(data.len(), want.len());
        assert!(data == want, "the frames differ");
        assert!(
            at >= want.len() - 1,
            "the pong at {at} came before the rest"
        );
    }
}
