//! `-`: standard input and output, so `serial-bridge /dev/ttyACM0 -` is a line monitor
//! and `cmd | serial-bridge - /dev/ttyACM0` feeds a board.
//!
//! EOF on stdin is a normal end: the bridge writes out everything read, then exits 0.
//! Stdout is written unbuffered, one write per batch, so a partial line (a prompt) shows
//! at once.

use std::io::{self, Write};

use super::{Shape, Stream};

/// Opens stdin and stdout. EOF on stdin is a normal end ([`super::Spec::ends_input`]).
pub fn open() -> Shape {
    Shape::Stream(Stream::new(Box::new(io::stdin()), Box::new(Stdout)))
}

/// Stdout without its line buffer: each write goes out whole, at once.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
