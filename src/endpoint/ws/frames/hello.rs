//! The console page's greeting: a hello (one text message of JSON: the times of the
//! earlier lines that follow, and the bridge's delimiter), then those lines, before
//! any live one. See [`Conn::speaking_console`].

use std::io;

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameSocket};

use super::{Conn, io_error};
use crate::endpoint::listen::Earlier;
use crate::endpoint::tls::wire::Wire;
use crate::framing::Framing;

impl Conn {
    /// A console page's hello and its earlier lines: see [`Conn::speaking_console`].
    pub(super) fn greet(
        &self,
        socket: &mut FrameSocket<Wire>,
        earlier: &Earlier,
        open: &mut bool,
    ) -> io::Result<()> {
        let times: Vec<String> = earlier.times.iter().map(u64::to_string).collect();
        let delimiter = match &self.framing {
            Framing::Lines { delimiter, .. } => std::str::from_utf8(delimiter).unwrap_or(""),
            Framing::Raw => "",
        };
        let hello = format!(
            "{{\"earlier\":[{}],\"delimiter\":{}}}",
            times.join(","),
            json_string(delimiter)
        );
        let hello = Frame::message(hello.into_bytes(), OpCode::Data(Data::Text), true);
        socket.write(self.masked(hello)).map_err(io_error)?;
        for piece in earlier.pieces.iter() {
            for frame in self.frames(piece, open) {
                socket.write(frame).map_err(io_error)?;
            }
        }
        socket.flush().map_err(io_error)
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
