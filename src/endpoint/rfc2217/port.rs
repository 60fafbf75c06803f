//! The port as every client of one RFC 2217 server sees it ([`Port`]): the line in
//! effect, DTR, RTS and BREAK as last set, and `reset=esp`'s reset sequences, which
//! run here with their timing. Where no serial port is across the bridge, what clients
//! set is kept here and goes nowhere.
//!
//! One client controls the port at a time (the one connected longest, see
//! [`Clients`]); the others watch: their SETs change nothing and are answered with
//! what is in effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use log::{debug, info};
use serialport::{DataBits, FlowControl, Parity, StopBits};

use super::Reset;
use crate::endpoint::control::{Control, Line};

/// The line a client sees where no serial port is across the bridge: what it set.
pub(super) const NO_PORT: Line = Line {
    baud: crate::endpoint::contract::DEFAULT_BAUD,
    data: DataBits::Eight,
    parity: Parity::None,
    stop: StopBits::One,
    flow: FlowControl::None,
};

/// The port as every client of one server sees it.
#[derive(Debug)]
pub struct Port {
    /// The server's name, for log lines.
    name: String,
    reset: Reset,
    /// The line in effect where no serial port is across (its settings go nowhere).
    line: Line,
    /// DTR, RTS and BREAK as the controlling client last set them: what is answered
    /// where the port has no modem lines (a pty) or `reset=` keeps them from it.
    dtr: bool,
    rts: bool,
    brk: bool,
    /// Whether a client changed anything since the port was its own.
    touched: bool,
    /// `reset=esp`: a download-mode reset sequence is under way.
    download: bool,
    /// `reset=esp`: a sequence is running on its thread; no other starts meanwhile.
    resetting: Arc<AtomicBool>,
}

impl Port {
    /// The port of the server `name`, with DTR and RTS handled as `reset` says.
    pub fn new(name: &str, reset: Reset) -> Port {
        Port {
            name: name.to_string(),
            reset,
            line: NO_PORT,
            dtr: true,
            rts: true,
            brk: false,
            touched: false,
            download: false,
            resetting: Arc::default(),
        }
    }

    /// The last client left: whether the port should get its own settings back (a
    /// client changed something). What clients were told is forgotten.
    pub fn release(&mut self) -> bool {
        let touched = std::mem::take(&mut self.touched);
        if touched {
            (self.dtr, self.rts, self.brk, self.line) = (true, true, false, NO_PORT);
            self.download = false;
        }
        touched
    }

    /// The line in effect.
    pub(super) fn line(&self, control: Option<&dyn Control>) -> Line {
        control.map_or(self.line, |c| c.line())
    }

    /// Applies a changed line, if `line` differs from what is in effect.
    pub(super) fn set_line(&mut self, control: Option<&dyn Control>, line: Line, peer: &str) {
        if line == self.line(control) {
            return;
        }
        self.touched = true;
        match control {
            None => self.line = line,
            Some(c) => {
                if let Err(e) = c.set_line(&line) {
                    info!("{}: client {peer} asked for {line}: {e}", self.name);
                    return;
                }
            }
        }
        match self.line(control) {
            now if now == line => info!("{}: client {peer} set the port to {line}", self.name),
            now => info!(
                "{}: client {peer} asked for {line}; the port took {now}",
                self.name
            ),
        }
    }

    /// Sets DTR and/or RTS, as `reset=` says.
    pub(super) fn set_lines(
        &mut self,
        control: Option<&Arc<dyn Control>>,
        dtr: Option<bool>,
        rts: Option<bool>,
    ) {
        self.touched = true;
        let Some(c) = control else {
            (self.dtr, self.rts) = (dtr.unwrap_or(self.dtr), rts.unwrap_or(self.rts));
            return;
        };
        let pass = match self.reset {
            Reset::None => false,
            Reset::Pass => true,
            Reset::Esp => self.esp(c, dtr, rts),
        };
        (self.dtr, self.rts) = (dtr.unwrap_or(self.dtr), rts.unwrap_or(self.rts));
        if pass && let Err(e) = c.set_lines(dtr, rts) {
            debug!("{}: cannot set DTR/RTS: {e}", self.name);
        }
    }

    /// Sets BREAK, as the controlling client asked (`control`: the serial port across
    /// the bridge, if one is up).
    pub(super) fn set_break(&mut self, control: Option<&dyn Control>, on: bool) {
        self.touched = true;
        match control.map(|c| c.set_break(on)) {
            Some(Err(e)) => debug!("{}: cannot set BREAK: {e}", self.name),
            _ => self.brk = on,
        }
    }

    /// The server's name, for log lines.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// DTR as the controlling client last set it.
    pub(super) fn dtr(&self) -> bool {
        self.dtr
    }

    /// RTS as the controlling client last set it.
    pub(super) fn rts(&self) -> bool {
        self.rts
    }

    /// BREAK as the controlling client last set it.
    pub(super) fn brk(&self) -> bool {
        self.brk
    }

    /// `reset=esp`: esptool's DTR and RTS steps are timed for a local port, and a
    /// network breaks that timing; so its first step starts the whole sequence here,
    /// as Espressif's esp_rfc2217_server does, and the rest is only answered. Returns
    /// whether this step goes to the port as it is.
    fn esp(&mut self, control: &Arc<dyn Control>, dtr: Option<bool>, rts: Option<bool>) -> bool {
        let (name, control) = (self.name.clone(), Arc::clone(control));
        let resetting = Arc::clone(&self.resetting);
        let run = |sequence: fn(&dyn Control) -> std::io::Result<()>, what: &'static str| {
            // A client that toggles DTR in a loop gets one sequence at a time.
            if resetting.swap(true, Ordering::AcqRel) {
                debug!("{name}: {what} asked while one runs; not started");
                return;
            }
            let (named, control, running) =
                (name.clone(), Arc::clone(&control), Arc::clone(&resetting));
            let spawned = thread::Builder::new()
                .name(format!("reset {name}"))
                .spawn(move || {
                    info!("{named}: {what}");
                    if let Err(e) = sequence(&*control) {
                        info!("{named}: {what} failed: {e}");
                    }
                    running.store(false, Ordering::Release);
                });
            if let Err(e) = spawned {
                resetting.store(false, Ordering::Release);
                info!("{name}: cannot start the reset: {e}");
            }
        };
        match (dtr, rts) {
            (Some(false), None) => {
                self.download = false;
                true
            }
            (None, Some(false)) if !self.download => {
                run(hard_reset, "hard reset (reset=esp)");
                false
            }
            (Some(true), None) if !self.download => {
                self.download = true;
                run(download_reset, "reset into the bootloader (reset=esp)");
                false
            }
            _ => false,
        }
    }
}

/// esptool's hard reset: EN low for 100 ms.
fn hard_reset(c: &dyn Control) -> std::io::Result<()> {
    c.set_lines(None, Some(true))?;
    thread::sleep(Duration::from_millis(100));
    c.set_lines(None, Some(false))
}

/// esptool's reset into the bootloader (its "UnixTightReset"): EN low with IO0 high,
/// then EN high with IO0 low, then IO0 high; each step sets both lines at once.
fn download_reset(c: &dyn Control) -> std::io::Result<()> {
    c.set_lines(Some(false), Some(false))?;
    c.set_lines(Some(true), Some(true))?;
    c.set_lines(Some(false), Some(true))?;
    thread::sleep(Duration::from_millis(100));
    c.set_lines(Some(true), Some(false))?;
    thread::sleep(Duration::from_millis(50));
    c.set_lines(Some(false), Some(false))?;
    c.set_lines(Some(false), None)
}

/// The clients of one server by ticket, in the order they came: the first controls
/// the port. Kept apart from [`Port`], so that a client comes and goes at once even
/// while a setting is being applied.
#[derive(Debug, Default)]
pub struct Clients(Vec<u64>);

impl Clients {
    /// A client came: whether it controls the port.
    pub fn join(&mut self, ticket: u64) -> bool {
        self.0.push(ticket);
        self.0.len() == 1
    }

    /// A client left: the ticket of the client that controls the port now, if control
    /// passed to it, and whether it was the last.
    pub fn leave(&mut self, ticket: u64) -> (Option<u64>, bool) {
        let was = self.0.first().copied();
        self.0.retain(|&t| t != ticket);
        let now = self.0.first().copied();
        ((now != was).then_some(now).flatten(), self.0.is_empty())
    }

    /// Whether the client `ticket` controls the port.
    pub fn controls(&self, ticket: u64) -> bool {
        self.0.first() == Some(&ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::super::comport::{Com, control};
    use super::super::session::Session;
    use super::super::session::tests::ask;
    use super::*;

    #[test]
    fn without_a_port_or_modem_lines_the_levels_asked_for_are_kept() {
        let mut port = Port::new("server", Reset::Pass);
        let mut s = Session::default();
        let answer = s.answer(Com::Baud(57_600), ask(&mut port, None, true));
        assert_eq!(answer, Some(Com::Baud(57_600)));
        let answer = s.answer(Com::Control(control::RTS_OFF), ask(&mut port, None, true));
        assert_eq!(answer, Some(Com::Control(control::RTS_OFF)));
        assert_eq!(
            s.answer(Com::ModemState(None), ask(&mut port, None, true)),
            Some(Com::ModemState(Some(0)))
        );
        assert!(port.release());
        assert_eq!(port.line, NO_PORT);
    }
}
