//! What a server answers to each COM-PORT-OPTION command, with no sockets: one
//! client's state ([`Session`]) and its answers, which it applies to the port as its
//! clients see it ([`Port`]). Every SET is answered at once with the value now in
//! effect; a value the port cannot take (mark parity, 1.5 stop bits, a baud rate the
//! driver refuses) is answered with the one in effect, which is how RFC 2217 says "no".
//! A client that does not control the port only watches: its SETs change nothing.

use std::sync::Arc;

use log::debug;

use super::comport::{
    Com, control, data_bits, data_value, flow, flow_value, line, modem, parity, parity_value,
    purge, stop_bits, stop_value,
};
use super::port::Port;
use crate::endpoint::control::{Control, Line, LineErrors, Modem};

/// Who asks, and of what: the port as clients see it, the serial port across the
/// bridge (if one is up), whether the asking client controls the port (else its SETs
/// change nothing), and its name for log lines.
pub struct Ask<'a> {
    /// The port as clients see it.
    pub port: &'a mut Port,
    /// The serial port across the bridge, if one is up.
    pub control: Option<&'a Arc<dyn Control>>,
    /// Whether the client controls the port.
    pub in_control: bool,
    /// The client, for log lines.
    pub peer: &'a str,
}

/// One client's state.
#[derive(Debug)]
pub struct Session {
    /// Which modem-state bits it wants notified (RFC 2217's default: all).
    modem_mask: u8,
    /// The modem state last sent to it, for the change bits.
    modem_sent: Option<u8>,
    /// Which line-state bits it wants notified (RFC 2217's default: none).
    line_mask: u8,
    /// The port's receive-error counts when last looked at.
    errors_seen: Option<LineErrors>,
    /// Whether it asked us to stop sending for now.
    suspended: bool,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            modem_mask: 0xFF,
            modem_sent: None,
            line_mask: 0,
            errors_seen: None,
            suspended: false,
        }
    }
}

/// The modem state byte of `lines` (no port, or none readable: all off).
fn modem_byte(lines: Option<Modem>) -> u8 {
    let lines = lines.unwrap_or_default();
    [
        (lines.cd, modem::CD),
        (lines.ri, modem::RI),
        (lines.dsr, modem::DSR),
        (lines.cts, modem::CTS),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |byte, (_, bit)| byte | bit)
}

impl Session {
    /// Whether the client asked us to stop sending to it.
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    /// The modem-state notice to send now: always when `asked`, else only when the
    /// lines it watches changed since the last one. The low four bits say which
    /// lines changed.
    pub fn modem_notice(&mut self, lines: Option<Modem>, asked: bool) -> Option<Com> {
        let now = modem_byte(lines);
        let changed = self.modem_sent.map_or(0, |before| (before ^ now) >> 4);
        if !asked && self.modem_sent.is_some() && (changed << 4) & self.modem_mask == 0 {
            return None;
        }
        self.modem_sent = Some(now);
        Some(Com::ModemState(Some((now | changed) & self.modem_mask)))
    }

    /// The line-state notice to send now, if receive errors the client watches grew
    /// since the last look (the first look only takes note).
    pub fn line_notice(&mut self, errors: Option<LineErrors>) -> Option<Com> {
        let now = errors?;
        let before = self.errors_seen.replace(now)?;
        let grew = |now: u32, before: u32, bit: u8| if now != before { bit } else { 0 };
        let bits = grew(now.overrun, before.overrun, line::OVERRUN)
            | grew(now.parity, before.parity, line::PARITY)
            | grew(now.frame, before.frame, line::FRAMING)
            | grew(now.brk, before.brk, line::BREAK);
        Some(Com::LineState(bits & self.line_mask)).filter(|_| bits & self.line_mask != 0)
    }

    /// Whether the client watches any receive error.
    pub fn watches_lines(&self) -> bool {
        self.line_mask & (line::OVERRUN | line::PARITY | line::FRAMING | line::BREAK) != 0
    }

    /// Whether the client watches any modem line.
    pub fn watches_modem(&self) -> bool {
        self.modem_mask & 0xF0 != 0
    }

    /// Answers `com`, asked as `ask` says.
    pub fn answer(&mut self, com: Com, ask: Ask<'_>) -> Option<Com> {
        let Ask {
            port,
            control,
            in_control,
            peer,
        } = ask;
        let c = control.map(|c| &**c);
        let mut line = port.line(c);
        let set = |port: &mut Port, line: Line| {
            if in_control {
                port.set_line(c, line, peer);
            }
        };
        Some(match com {
            Com::Signature(text) if text.is_empty() => {
                let version = env!("CARGO_PKG_VERSION");
                Com::Signature(format!("serial-bridge {version}").into_bytes())
            }
            Com::Signature(text) => {
                let text = crate::escape::escape(&text);
                debug!("{}: client {peer} is {text}", port.name());
                return None;
            }
            Com::Baud(baud) => {
                if baud != 0 {
                    line.baud = baud;
                    set(port, line);
                }
                Com::Baud(port.line(c).baud)
            }
            Com::DataSize(value) => {
                if let Some(bits) = data_bits(value) {
                    line.data = bits;
                    set(port, line);
                }
                Com::DataSize(data_value(port.line(c).data))
            }
            Com::Parity(value) => {
                if let Some(parity) = parity(value) {
                    line.parity = parity;
                    set(port, line);
                }
                Com::Parity(parity_value(port.line(c).parity))
            }
            Com::StopSize(value) => {
                if let Some(stop) = stop_bits(value) {
                    line.stop = stop;
                    set(port, line);
                }
                Com::StopSize(stop_value(port.line(c).stop))
            }
            Com::Control(value) => {
                let ask = Ask {
                    port,
                    control,
                    in_control,
                    peer,
                };
                self.control(value, ask)?
            }
            Com::ModemState(_) => {
                let lines = c.and_then(|c| c.modem().ok());
                return self.modem_notice(lines, true);
            }
            Com::Suspend => {
                self.suspended = true;
                return None;
            }
            Com::Resume => {
                self.suspended = false;
                return None;
            }
            Com::LineStateMask(mask) => {
                self.line_mask = mask;
                self.errors_seen = c.and_then(|c| c.line_errors().ok());
                Com::LineStateMask(mask)
            }
            Com::ModemStateMask(mask) => {
                self.modem_mask = mask;
                Com::ModemStateMask(mask)
            }
            Com::Purge(which @ (purge::RECEIVE | purge::TRANSMIT | purge::BOTH)) => {
                if in_control && let Some(c) = c {
                    let (receive, transmit) =
                        (which & purge::RECEIVE != 0, which & purge::TRANSMIT != 0);
                    if let Err(e) = c.purge(receive, transmit) {
                        debug!("{}: purge failed: {e}", port.name());
                    }
                }
                Com::Purge(which)
            }
            Com::Purge(_) | Com::LineState(_) => return None,
        })
    }

    /// Answers SET-CONTROL `value`, asked as `ask` says.
    fn control(&mut self, value: u8, ask: Ask<'_>) -> Option<Com> {
        let Ask {
            port,
            control,
            in_control,
            peer,
        } = ask;
        let c = control.map(|c| &**c);
        let mut line = port.line(c);
        let level = |on: bool, yes: u8, no: u8| Com::Control(if on { yes } else { no });
        Some(match value {
            control::ASK_FLOW | 17..=19 => Com::Control(flow_value(line.flow)),
            control::FLOW_NONE..=control::FLOW_HARDWARE => {
                if in_control && let Some(f) = flow(value) {
                    line.flow = f;
                    port.set_line(c, line, peer);
                }
                Com::Control(flow_value(port.line(c).flow))
            }
            control::ASK_FLOW_IN..=16 => {
                Com::Control(control::FLOW_IN_NONE + flow_value(line.flow) - control::FLOW_NONE)
            }
            control::ASK_BREAK => level(port.brk(), control::BREAK_ON, control::BREAK_OFF),
            control::BREAK_ON | control::BREAK_OFF => {
                let on = value == control::BREAK_ON;
                if in_control && on != port.brk() {
                    port.set_break(c, on);
                }
                level(port.brk(), control::BREAK_ON, control::BREAK_OFF)
            }
            control::ASK_DTR => level(port.dtr(), control::DTR_ON, control::DTR_OFF),
            control::DTR_ON | control::DTR_OFF => {
                if in_control {
                    port.set_lines(control, Some(value == control::DTR_ON), None);
                }
                level(port.dtr(), control::DTR_ON, control::DTR_OFF)
            }
            control::ASK_RTS => level(port.rts(), control::RTS_ON, control::RTS_OFF),
            control::RTS_ON | control::RTS_OFF => {
                if in_control {
                    port.set_lines(control, None, Some(value == control::RTS_ON));
                }
                level(port.rts(), control::RTS_ON, control::RTS_OFF)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io;
    use std::sync::Mutex;
    use std::thread;
    use std::time::Duration;

    use super::super::Reset;
    use super::super::port::{Clients, NO_PORT};
    use super::*;

    /// A port's controls that record what was asked of them.
    #[derive(Default)]
    struct Recorder {
        line: Mutex<Option<Line>>,
        calls: Mutex<Vec<String>>,
        modem_lines: bool,
    }

    impl Control for Recorder {
        fn line(&self) -> Line {
            self.line.lock().unwrap().unwrap_or(NO_PORT)
        }
        fn set_line(&self, line: &Line) -> io::Result<()> {
            if line.baud > 4_000_000 {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            self.calls.lock().unwrap().push(format!("line {line}"));
            *self.line.lock().unwrap() = Some(*line);
            Ok(())
        }
        fn set_lines(&self, dtr: Option<bool>, rts: Option<bool>) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("lines {dtr:?} {rts:?}"));
            Ok(())
        }
        fn set_break(&self, on: bool) -> io::Result<()> {
            self.calls.lock().unwrap().push(format!("break {on}"));
            Ok(())
        }
        fn purge(&self, receive: bool, transmit: bool) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("purge {receive} {transmit}"));
            Ok(())
        }
        fn modem(&self) -> io::Result<Modem> {
            match self.modem_lines {
                true => Ok(Modem {
                    cts: true,
                    cd: true,
                    ..Modem::default()
                }),
                false => Err(io::ErrorKind::Unsupported.into()),
            }
        }
        fn restore(&self) {
            self.calls.lock().unwrap().push("restore".into());
        }
    }

    /// A question from "peer" about `port`, for these tests and port.rs's.
    pub(in super::super) fn ask<'a>(
        port: &'a mut Port,
        control: Option<&'a Arc<dyn Control>>,
        in_control: bool,
    ) -> Ask<'a> {
        Ask {
            port,
            control,
            in_control,
            peer: "peer",
        }
    }

    fn calls(recorder: &Arc<Recorder>) -> Vec<String> {
        std::mem::take(&mut *recorder.calls.lock().unwrap())
    }

    #[test]
    fn sets_are_answered_with_what_is_in_effect_and_applied_once() {
        let recorder = Arc::new(Recorder::default());
        let control: Arc<dyn Control> = recorder.clone();
        let mut port = Port::new("server", Reset::Pass);
        let mut s = Session::default();
        let mut asked = |com| s.answer(com, ask(&mut port, Some(&control), true));
        assert_eq!(asked(Com::Baud(115_200)), Some(Com::Baud(115_200)));
        assert_eq!(asked(Com::Baud(115_200)), Some(Com::Baud(115_200)));
        assert_eq!(asked(Com::Baud(0)), Some(Com::Baud(115_200)));
        // Refused by the driver, or not supported: the value in effect.
        assert_eq!(asked(Com::Baud(9_000_000)), Some(Com::Baud(115_200)));
        assert_eq!(asked(Com::Parity(4)), Some(Com::Parity(1)));
        assert_eq!(asked(Com::StopSize(3)), Some(Com::StopSize(1)));
        assert_eq!(asked(Com::DataSize(9)), Some(Com::DataSize(8)));
        assert_eq!(asked(Com::DataSize(7)), Some(Com::DataSize(7)));
        assert_eq!(
            asked(Com::Control(control::FLOW_NONE)),
            Some(Com::Control(control::FLOW_NONE))
        );
        assert_eq!(
            calls(&recorder),
            ["line 115200 8N1", "line 115200 7N1"],
            "only changes reach the port"
        );
        assert_eq!(
            asked(Com::Control(control::DTR_OFF)),
            Some(Com::Control(control::DTR_OFF))
        );
        assert_eq!(
            asked(Com::Control(control::ASK_DTR)),
            Some(Com::Control(control::DTR_OFF))
        );
        assert_eq!(asked(Com::Purge(3)), Some(Com::Purge(3)));
        assert_eq!(asked(Com::Purge(9)), None);
        assert_eq!(
            asked(Com::Control(control::BREAK_ON)),
            Some(Com::Control(control::BREAK_ON))
        );
        assert_eq!(
            calls(&recorder),
            ["lines Some(false) None", "purge true true", "break true"]
        );
        assert!(port.release(), "changed: to be restored");
        assert!(!port.release(), "once");
    }

    #[test]
    fn watchers_change_nothing_and_control_passes_on() {
        let recorder = Arc::new(Recorder::default());
        let control: Arc<dyn Control> = recorder.clone();
        let mut port = Port::new("server", Reset::Pass);
        let mut clients = Clients::default();
        assert!(clients.join(1));
        assert!(!clients.join(2));
        assert!(!clients.controls(2));
        let mut watcher = Session::default();
        let answer = watcher.answer(Com::Baud(300), ask(&mut port, Some(&control), false));
        assert_eq!(answer, Some(Com::Baud(NO_PORT.baud)));
        let answer = watcher.answer(
            Com::Control(control::RTS_OFF),
            ask(&mut port, Some(&control), false),
        );
        assert_eq!(answer, Some(Com::Control(control::RTS_ON)));
        assert!(calls(&recorder).is_empty());
        assert_eq!(clients.leave(1), (Some(2), false));
        assert!(clients.controls(2));
        assert_eq!(clients.leave(2), (None, true));
        assert!(!port.release(), "nothing changed: nothing to restore");
    }

    #[test]
    fn modem_notices_honour_the_mask_and_say_what_changed() {
        let mut s = Session::default();
        let cts = Modem {
            cts: true,
            ..Modem::default()
        };
        assert_eq!(
            s.modem_notice(Some(cts), false),
            Some(Com::ModemState(Some(modem::CTS)))
        );
        assert_eq!(
            s.modem_notice(Some(cts), false),
            None,
            "no change, no notice"
        );
        assert_eq!(
            s.modem_notice(None, false),
            Some(Com::ModemState(Some(0x01))),
            "CTS dropped: its change bit"
        );
        s.modem_mask = modem::DSR;
        assert_eq!(s.modem_notice(Some(cts), false), None, "CTS is not watched");
        assert_eq!(
            s.modem_notice(Some(cts), true),
            Some(Com::ModemState(Some(0)))
        );
    }

    #[test]
    fn line_notices_say_which_errors_grew_and_honour_the_mask() {
        let mut s = Session::default();
        let errors = |overrun, frame| {
            Some(LineErrors {
                overrun,
                frame,
                ..LineErrors::default()
            })
        };
        assert_eq!(
            s.line_notice(errors(0, 0)),
            None,
            "the first look takes note"
        );
        assert_eq!(s.line_notice(errors(1, 0)), None, "the default mask is 0");
        assert!(!s.watches_lines());
        s.line_mask = 0xFF;
        assert!(s.watches_lines());
        assert_eq!(s.line_notice(errors(1, 0)), None, "nothing grew");
        assert_eq!(
            s.line_notice(errors(3, 2)),
            Some(Com::LineState(line::OVERRUN | line::FRAMING))
        );
        s.line_mask = line::FRAMING;
        assert_eq!(
            s.line_notice(errors(4, 2)),
            None,
            "overruns are not watched"
        );
        assert_eq!(s.line_notice(None), None, "no counts, no notice");
    }

    #[test]
    fn reset_esp_runs_esptools_sequences_here() {
        let recorder = Arc::new(Recorder::default());
        let control: Arc<dyn Control> = recorder.clone();
        let mut port = Port::new("server", Reset::Esp);
        let mut s = Session::default();
        let mut asked = |v| s.answer(Com::Control(v), ask(&mut port, Some(&control), true));
        // esptool's reset into the bootloader starts with DTR off, then DTR on.
        assert_eq!(
            asked(control::DTR_OFF),
            Some(Com::Control(control::DTR_OFF))
        );
        assert_eq!(asked(control::DTR_ON), Some(Com::Control(control::DTR_ON)));
        assert_eq!(asked(control::RTS_ON), Some(Com::Control(control::RTS_ON)));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while recorder.calls.lock().unwrap().len() < 7 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            calls(&recorder),
            [
                "lines Some(false) None",
                "lines Some(false) Some(false)",
                "lines Some(true) Some(true)",
                "lines Some(false) Some(true)",
                "lines Some(true) Some(false)",
                "lines Some(false) Some(false)",
                "lines Some(false) None",
            ]
        );
    }
}
