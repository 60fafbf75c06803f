//! A serial port's controls, offered to the endpoint on the other side of the bridge:
//! what lets `rfc2217-listen://` change a port's baud rate and drive its DTR and RTS
//! for a remote client. A port offers them ([`super::Endpoint::controlled_by`]); the
//! bridge hands every endpoint a [`ControlLink`] to the port across from it (in a hub,
//! the peers to the device's), which follows the port through reopenings and is empty
//! while the port is down or when it is no serial port at all.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use serialport::{DataBits, FlowControl, Parity, StopBits};

/// A port's line settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Bits per second.
    pub baud: u32,
    /// Bits per character.
    pub data: DataBits,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop: StopBits,
    /// Flow control.
    pub flow: FlowControl,
}

impl fmt::Display for Line {
    /// `115200 8N1`, with the flow control if there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = u8::from(self.data);
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
        };
        let stop = match self.stop {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        write!(f, "{} {data}{parity}{stop}", self.baud)?;
        match self.flow {
            FlowControl::None => Ok(()),
            FlowControl::Software => f.write_str(", XON/XOFF"),
            FlowControl::Hardware => f.write_str(", RTS/CTS"),
        }
    }
}

/// The modem lines a port reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modem {
    /// Clear to send.
    pub cts: bool,
    /// Data set ready.
    pub dsr: bool,
    /// Ring indicator.
    pub ri: bool,
    /// Carrier detect.
    pub cd: bool,
}

/// Receive errors counted since the port opened (Linux's `TIOCGICOUNT`): their
/// growth is what RFC 2217's line-state notices report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineErrors {
    /// Characters lost: the UART's or the driver's buffer was full.
    pub overrun: u32,
    /// Parity errors.
    pub parity: u32,
    /// Framing errors (a wrong baud rate, noise).
    pub frame: u32,
    /// BREAKs received.
    pub brk: u32,
}

/// What a serial port lets another endpoint do to it. Each call acts at once; all are
/// safe from several threads.
pub trait Control: Send + Sync {
    /// The settings in effect.
    fn line(&self) -> Line;
    /// Applies `line`, changing only what differs (a needless change glitches the line).
    /// A new baud rate waits until the bytes already written have left at the old one.
    /// On failure the settings in effect are as [`Control::line`] says.
    fn set_line(&self, line: &Line) -> io::Result<()>;
    /// Sets DTR and RTS (`None` leaves one as it is), both with one call where the
    /// system has one, so a reset circuit sees them change together.
    fn set_lines(&self, dtr: Option<bool>, rts: Option<bool>) -> io::Result<()>;
    /// Starts or ends a BREAK.
    fn set_break(&self, on: bool) -> io::Result<()>;
    /// Throws away what the port received and has not been read (`receive`), and what
    /// waits to go out (`transmit`).
    fn purge(&self, receive: bool, transmit: bool) -> io::Result<()>;
    /// The modem lines; an error where the port has none (a pty).
    fn modem(&self) -> io::Result<Modem>;
    /// The receive errors counted so far; an error where the driver counts none.
    fn line_errors(&self) -> io::Result<LineErrors> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Puts back the port's own settings, as it was opened with them, where they were
    /// changed.
    fn restore(&self);
    /// Whether it is a port on another machine (RFC 2217): a pty across from it then
    /// passes on the settings its program makes, as if the program had opened that
    /// port. A local port keeps the settings of the command line.
    fn remote(&self) -> bool {
        false
    }
}

/// The port across the bridge, as it is now: empty while it is down.
#[derive(Clone, Default)]
pub struct ControlLink(Arc<Mutex<Option<Arc<dyn Control>>>>);

impl ControlLink {
    /// The port's controls now, if it is up and is a serial port.
    pub fn get(&self) -> Option<Arc<dyn Control>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The port is now `control` (or down, or no serial port).
    pub fn set(&self, control: Option<Arc<dyn Control>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = control;
    }
}

impl fmt::Debug for ControlLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let up = self.get().is_some();
        f.debug_struct("ControlLink").field("up", &up).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_people_write_them() {
        let mut line = Line {
            baud: 115_200,
            data: DataBits::Eight,
            parity: Parity::None,
            stop: StopBits::One,
            flow: FlowControl::None,
        };
        assert_eq!(line.to_string(), "115200 8N1");
        line.parity = Parity::Even;
        line.data = DataBits::Seven;
        line.stop = StopBits::Two;
        line.flow = FlowControl::Hardware;
        assert_eq!(line.to_string(), "115200 7E2, RTS/CTS");
    }
}
