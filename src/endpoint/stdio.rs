//! `-`: standard input and output, so `serial-bridge /dev/ttyACM0 -` is a line monitor
//! and `cmd | serial-bridge - /dev/ttyACM0` feeds a board.
//!
//! EOF on stdin is a normal end: the bridge writes out everything read, then exits 0.
//! Stdout is written unbuffered, one write per batch, so a partial line (a prompt) shows
//! at once.

use std::any::Any;
use std::io::{self, Write};

use super::contract::{Endpoint, Kind, Opening, Place};
use super::stream::Stream;

/// Standard input and output: `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stdio;

impl Kind for Stdio {
    fn name(&self) -> String {
        "-".into()
    }

    /// Stdin and stdout; EOF on stdin is a normal end.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let halves = Stream::new(Box::new(io::stdin()), Box::new(Stdout));
        Ok(Endpoint::new(opening.name, halves).ending_input())
    }

    fn place(&self) -> Place {
        Place::Stdio
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
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
