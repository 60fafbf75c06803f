//! A serial port's [`Control`]: its line settings, DTR and RTS, BREAK, purges and modem
//! lines, for an endpoint that serves the port to others (RFC 2217). It works on its
//! own handle of the port, beside the reader and writer, and remembers what is in
//! effect, so a setting asked for again is not applied again.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort};

use crate::endpoint::control::{Control, Line, Modem};

/// The longest a baud change waits for bytes written at the old rate to leave: a UART
/// held back by flow control may never drain, and the change must still happen (and
/// other clients' requests wait meanwhile).
const DRAIN_AT_MOST: Duration = Duration::from_secs(1);

/// The longest a baud change waits for a UART's FIFO: 16 bytes take 17 ms at 9600
/// baud, but seconds at 50.
const FIFO_AT_MOST: Duration = Duration::from_millis(20);

/// Bytes a UART may hold past its driver's queue (a 16550's FIFO), which the queue's
/// count does not show: a baud change also waits for them at the old rate.
const FIFO: u32 = 16;

/// A port's controls.
pub struct PortControl {
    /// The port's own settings, as opened.
    own: Own,
    state: Mutex<State>,
}

/// What the port was opened with.
struct Own {
    line: Line,
    dtr: Option<bool>,
    rts: Option<bool>,
}

/// The handle and what is in effect.
struct State {
    port: Box<dyn SerialPort>,
    /// The handle's descriptor, for the modem lines in one call.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    line: Line,
    /// Whether DTR or RTS was changed since the port opened.
    lines_changed: bool,
}

impl PortControl {
    /// Controls on `port`, a handle of a port opened with `line` and DTR and RTS set
    /// to `dtr` and `rts` where they are `Some` (on Unix, `fd` is the handle's
    /// descriptor).
    pub fn new(
        port: Box<dyn SerialPort>,
        #[cfg(unix)] fd: std::os::fd::RawFd,
        line: Line,
        (dtr, rts): (Option<bool>, Option<bool>),
    ) -> PortControl {
        PortControl {
            own: Own { line, dtr, rts },
            state: Mutex::new(State {
                port,
                #[cfg(unix)]
                fd,
                line,
                lines_changed: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Control for PortControl {
    fn line(&self) -> Line {
        self.state().line
    }

    fn set_line(&self, line: &Line) -> io::Result<()> {
        let mut state = self.state();
        let state = &mut *state;
        let before = state.line;
        let result = apply(state, line);
        if state.line != before {
            // What the driver took, which may not be what was asked (a pty keeps 8
            // data bits and no parity whatever it is told).
            let port = &state.port;
            state.line = Line {
                baud: port.baud_rate().unwrap_or(state.line.baud),
                data: port.data_bits().unwrap_or(state.line.data),
                parity: port.parity().unwrap_or(state.line.parity),
                stop: port.stop_bits().unwrap_or(state.line.stop),
                flow: port.flow_control().unwrap_or(state.line.flow),
            };
        }
        result
    }

    fn set_lines(&self, dtr: Option<bool>, rts: Option<bool>) -> io::Result<()> {
        let mut state = self.state();
        state.lines_changed = true;
        #[cfg(unix)]
        {
            let bit = |level: Option<bool>, want: bool, bit: libc::c_int| match level {
                Some(level) if level == want => bit,
                _ => 0,
            };
            let on = bit(dtr, true, libc::TIOCM_DTR) | bit(rts, true, libc::TIOCM_RTS);
            let off = bit(dtr, false, libc::TIOCM_DTR) | bit(rts, false, libc::TIOCM_RTS);
            crate::endpoint::unix::set_modem_bits(state.fd, on, off)
        }
        #[cfg(not(unix))]
        {
            if let Some(level) = dtr {
                state.port.write_data_terminal_ready(level)?;
            }
            if let Some(level) = rts {
                state.port.write_request_to_send(level)?;
            }
            Ok(())
        }
    }

    fn set_break(&self, on: bool) -> io::Result<()> {
        let state = self.state();
        match on {
            true => state.port.set_break()?,
            false => state.port.clear_break()?,
        }
        Ok(())
    }

    fn purge(&self, receive: bool, transmit: bool) -> io::Result<()> {
        let which = match (receive, transmit) {
            (true, true) => ClearBuffer::All,
            (true, false) => ClearBuffer::Input,
            (false, true) => ClearBuffer::Output,
            (false, false) => return Ok(()),
        };
        self.state().port.clear(which)?;
        Ok(())
    }

    fn modem(&self) -> io::Result<Modem> {
        #[cfg(unix)]
        {
            let bits = crate::endpoint::unix::modem_bits(self.state().fd)?;
            Ok(Modem {
                cts: bits & libc::TIOCM_CTS != 0,
                dsr: bits & libc::TIOCM_DSR != 0,
                ri: bits & libc::TIOCM_RI != 0,
                cd: bits & libc::TIOCM_CD != 0,
            })
        }
        #[cfg(not(unix))]
        {
            let mut state = self.state();
            Ok(Modem {
                cts: state.port.read_clear_to_send()?,
                dsr: state.port.read_data_set_ready()?,
                ri: state.port.read_ring_indicator()?,
                cd: state.port.read_carrier_detect()?,
            })
        }
    }

    #[cfg(target_os = "linux")]
    fn line_errors(&self) -> io::Result<crate::endpoint::control::LineErrors> {
        let [overrun, parity, frame, brk] = crate::endpoint::unix::error_counts(self.state().fd)?;
        Ok(crate::endpoint::control::LineErrors {
            overrun,
            parity,
            frame,
            brk,
        })
    }

    fn restore(&self) {
        if let Err(e) = self.set_line(&self.own.line) {
            log::debug!("cannot restore the port's settings: {e}");
        }
        if self.state().lines_changed {
            // A port opens with both lines on unless its settings say otherwise.
            let (dtr, rts) = (self.own.dtr.unwrap_or(true), self.own.rts.unwrap_or(true));
            if let Err(e) = self.set_lines(Some(dtr), Some(rts)) {
                log::debug!("cannot restore DTR and RTS: {e}");
            }
            self.state().lines_changed = false;
        }
    }
}

/// Applies what of `line` differs from what is in effect, one setting at a time,
/// noting each that took.
fn apply(state: &mut State, line: &Line) -> io::Result<()> {
    if line.baud != state.line.baud {
        drain(&*state.port, state.line.baud);
        state.port.set_baud_rate(line.baud)?;
        state.line.baud = line.baud;
    }
    if line.data != state.line.data {
        state.port.set_data_bits(line.data)?;
        state.line.data = line.data;
    }
    if line.parity != state.line.parity {
        state.port.set_parity(line.parity)?;
        state.line.parity = line.parity;
    }
    if line.stop != state.line.stop {
        state.port.set_stop_bits(line.stop)?;
        state.line.stop = line.stop;
    }
    if line.flow != state.line.flow {
        state.port.set_flow_control(line.flow)?;
        state.line.flow = line.flow;
    }
    Ok(())
}

/// Waits until what was written to `port` has left at `baud`, for at most
/// [`DRAIN_AT_MOST`]. Unlike `tcdrain`, it cannot hang on a port that never drains.
fn drain(port: &dyn SerialPort, baud: u32) {
    let start = Instant::now();
    // 10 bits a byte at 8N1 (the queue gets twice that: other framings, a slow driver).
    let time_for = |bytes: u32| Duration::from_secs_f64(f64::from(bytes) * 10.0 / f64::from(baud));
    let queued = port.bytes_to_write().unwrap_or(0);
    let most = (time_for(queued) * 2).min(DRAIN_AT_MOST);
    while port.bytes_to_write().is_ok_and(|n| n > 0) && start.elapsed() < most {
        thread::sleep(Duration::from_millis(1));
    }
    if let Some(left) = time_for(FIFO)
        .min(FIFO_AT_MOST)
        .checked_sub(start.elapsed())
    {
        thread::sleep(left);
    }
}
