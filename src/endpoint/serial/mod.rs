//! Serial ports: settings, opening, and the read and write halves.
//!
//! Two traps in serialport shape this file. Its reads fail with `TimedOut` when no
//! data arrives within the port's timeout, so the read half uses a long timeout and
//! treats `TimedOut` as "no data yet": an idle bridge wakes about once a minute. And
//! a port whose other side hangs up (a pty master closing) reports `BrokenPipe`, not
//! EOF; the read half turns that into EOF, the bridge's one signal for "closed". The
//! write half gets a short timeout instead, so a port that stops accepting data is
//! noticed and logged; the bridge keeps trying. Nothing here calls `flush`, which
//! waits for the bytes to leave the wire.

use std::any::Any;
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits};

use super::coalesce::Coalescing;
use super::contract::{Endpoint, Kind, Opening, Place};
use super::control::{Control, Line};
use super::settings::{LONGEST_WAIT, each_setting, on_off};
use super::stream::Stream;
use super::usb;
use crate::error::describe;

mod control;

pub use control::PortControl;

/// How long a read waits before it reports "no data" and waits again. Long, so an
/// idle bridge stays asleep; the bridge never needs a reader to wake up.
#[cfg(not(windows))]
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// On Windows a read in progress can hold up writes on the same port (serialport's
/// handles are not overlapped; serialport-rs issue #14), so reads there give up
/// quickly and a waiting write gets its turn within this time. Wine does not show
/// the problem, so the wine test in scripts/cross passes either way.
#[cfg(windows)]
const READ_TIMEOUT: Duration = Duration::from_millis(20);

/// How long a write may stall before the writer logs that the port is not accepting
/// data. It then keeps trying; a slow port holds back its own direction only.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A serial port path and its line settings, from `PATH[,key=value]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The device path, as given; for a USB selector, the selector (canonical form).
    pub path: String,
    /// A USB selector (`usb:VID:PID...`) in place of a path: resolved on every open.
    pub usb: Option<usb::Selector>,
    /// Baud rate; `None` takes `--baud`.
    pub baud: Option<u32>,
    /// Bits per character.
    pub data: DataBits,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop: StopBits,
    /// Flow control.
    pub flow: FlowControl,
    /// DTR level to set on open; `None` leaves what the OS does.
    pub dtr: Option<bool>,
    /// RTS level to set on open; `None` leaves what the OS does.
    pub rts: Option<bool>,
    /// Whether closing the port drops DTR (HUPCL, Unix); `None` leaves it as it is.
    /// Off keeps an Arduino from resetting when the bridge closes or reopens it.
    pub hupcl: Option<bool>,
    /// How long to hold lines for this port after opening it (a board's bootloader
    /// ignores input for a second or two after a reset); `None` takes `--settle`.
    pub settle: Option<Duration>,
}

impl Settings {
    /// A port at `path` with 8N1, no flow control and no baud rate yet.
    pub fn new(path: &str) -> Settings {
        Settings {
            path: path.to_string(),
            usb: None,
            baud: None,
            data: DataBits::Eight,
            parity: Parity::None,
            stop: StopBits::One,
            flow: FlowControl::None,
            dtr: None,
            rts: None,
            hupcl: None,
            settle: None,
        }
    }
}

impl Settings {
    /// Its line settings at `baud`.
    fn line(&self, baud: u32) -> Line {
        Line {
            baud,
            data: self.data,
            parity: self.parity,
            stop: self.stop,
            flow: self.flow,
        }
    }

    /// The DTR and RTS levels it sets.
    fn lines(&self) -> (Option<bool>, Option<bool>) {
        (self.dtr, self.rts)
    }
}

/// The settings a port spec may carry, for messages.
const KEYS: &str = "baud, data, parity, stop, flow, dtr, rts, hupcl, settle";

impl FromStr for Settings {
    type Err = String;

    fn from_str(text: &str) -> Result<Settings, String> {
        let mut parts = text.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(format!("{text}: missing port path before the settings"));
        }
        let mut settings = Settings::new(path);
        if usb::is_selector(path) {
            let selector: usb::Selector = path.parse()?;
            settings.path = selector.to_string();
            settings.usb = Some(selector);
        }
        each_setting(path, parts, KEYS, &[], |key, value| {
            match key {
                "baud" => match value.parse::<u32>() {
                    Ok(baud) if baud > 0 => settings.baud = Some(baud),
                    _ => return Err("baud must be a whole number, e.g. baud=115200".to_string()),
                },
                "data" => {
                    settings.data = match value {
                        "5" => DataBits::Five,
                        "6" => DataBits::Six,
                        "7" => DataBits::Seven,
                        "8" => DataBits::Eight,
                        _ => return Err("data bits must be 5, 6, 7 or 8".to_string()),
                    }
                }
                "parity" => {
                    settings.parity = match value {
                        "none" => Parity::None,
                        "odd" => Parity::Odd,
                        "even" => Parity::Even,
                        _ => return Err("parity must be none, odd or even".to_string()),
                    }
                }
                "stop" => {
                    settings.stop = match value {
                        "1" => StopBits::One,
                        "2" => StopBits::Two,
                        _ => return Err("stop bits must be 1 or 2".to_string()),
                    }
                }
                "flow" => {
                    settings.flow = match value {
                        "none" => FlowControl::None,
                        "software" => FlowControl::Software,
                        "hardware" => FlowControl::Hardware,
                        _ => return Err("flow must be none, software or hardware".to_string()),
                    }
                }
                "dtr" | "rts" | "hupcl" => {
                    let level = on_off(value).ok_or_else(|| format!("{key} must be on or off"))?;
                    *match key {
                        "dtr" => &mut settings.dtr,
                        "rts" => &mut settings.rts,
                        _ => &mut settings.hupcl,
                    } = Some(level);
                }
                "settle" => match value.parse::<u64>() {
                    Ok(ms) if u128::from(ms) <= LONGEST_WAIT.as_millis() => {
                        settings.settle = Some(Duration::from_millis(ms))
                    }
                    Ok(_) => {
                        let most = LONGEST_WAIT.as_millis();
                        return Err(format!("settle is at most {most} ms (a day)"));
                    }
                    _ => return Err("settle is in milliseconds, e.g. settle=2000".to_string()),
                },
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(settings)
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl Kind for Settings {
    fn name(&self) -> String {
        self.path.clone()
    }

    /// Opens the port; `--baud` and `--settle` fill in what its settings leave out, and
    /// `--coalesce` applies to its reads.
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        let defaults = opening.defaults;
        let settle = self.settle.or(defaults.settle);
        let (stream, device, control) = open(self, self.baud.unwrap_or(defaults.baud))?;
        let stream = stream.map_reader(|inner| Coalescing::wrap(inner, defaults.coalesce));
        Ok(Endpoint::new(opening.name, stream)
            .settling(settle)
            .holding(device)
            .controlled_by(control))
    }

    fn why(&self, error: &io::Error) -> String {
        match error.kind() {
            io::ErrorKind::NotFound => {
                "no such port (run `serial-bridge --list` to see the ports present)".into()
            }
            io::ErrorKind::PermissionDenied => "permission denied (add your user to the group \
                 that owns the port, usually dialout, or uucp on Arch and macOS, then log in \
                 again)"
                .into(),
            io::ErrorKind::ResourceBusy => "port is busy (another program has it open: a \
                 serial monitor, ModemManager or another bridge)"
                .into(),
            _ => describe(error),
        }
    }

    /// A USB selector naming several boards is a mistake to fix, not one to wait out.
    fn lasting(&self, error: &io::Error) -> bool {
        usb::is_ambiguous(error)
    }

    fn place(&self) -> Place {
        Place::Path(self.path.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Opens the port with `settings` at `baud`: its stream, its device number and its
/// controls.
fn open(settings: &Settings, baud: u32) -> io::Result<(Stream, Option<u64>, Arc<dyn Control>)> {
    let path = match &settings.usb {
        Some(selector) => usb::resolve(selector)?,
        None => settings.path.clone(),
    };
    let builder = serialport::new(&path, baud)
        .data_bits(settings.data)
        .parity(settings.parity)
        .stop_bits(settings.stop)
        .flow_control(settings.flow)
        .timeout(READ_TIMEOUT);
    let builder = match settings.dtr {
        Some(level) => builder.dtr_on_open(level),
        None => builder,
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut port = builder.open_native().map_err(io_error)?;
        set_lines(&mut port, settings);
        if let Some(hupcl) = settings.hupcl {
            super::unix::set_hupcl(port.as_raw_fd(), hupcl)?;
        }
        let device = super::unix::device_of(std::path::Path::new(&path));
        let handle = port.try_clone_native().map_err(io_error)?;
        let fd = handle.as_raw_fd();
        let control = PortControl::new(Box::new(handle), fd, settings.line(baud), settings.lines());
        Ok((tty_stream(port, true)?, device, Arc::new(control)))
    }
    #[cfg(not(unix))]
    {
        let mut port = builder.open().map_err(io_error)?;
        set_lines(&mut *port, settings);
        let mut writer = port.try_clone().map_err(io_error)?;
        writer.set_timeout(WRITE_TIMEOUT).map_err(io_error)?;
        let handle = port.try_clone().map_err(io_error)?;
        let control = PortControl::new(handle, settings.line(baud), settings.lines());
        Ok((
            Stream::new(Box::new(Reader { port }), Box::new(writer)),
            None,
            Arc::new(control),
        ))
    }
}

/// A byte stream on an open terminal (a serial port, or a pty's master side).
///
/// The port is made non-blocking (`O_NONBLOCK`) for a write half that never waits
/// ([`super::unix::WriteNow`]). The flag is shared by every handle on the port;
/// serialport polls before each of its own reads and writes, so those still wait as
/// they should. The read half waits in `read` alone on an open file of its own where
/// it can (`reopen`: a port that opens again as itself, on Linux), else in `poll`.
#[cfg(unix)]
pub fn tty_stream(mut port: serialport::TTYPort, reopen: bool) -> io::Result<Stream> {
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
    port.set_timeout(READ_TIMEOUT).map_err(io_error)?;
    let fd = port.as_raw_fd();
    super::unix::set_nonblocking(fd)?;
    let clone = port.try_clone_native().map_err(io_error)?;
    // SAFETY: `into_raw_fd` hands over a descriptor nothing else owns or closes.
    let direct = unsafe { OwnedFd::from_raw_fd(clone.into_raw_fd()) };
    let mut writer = port.try_clone_native().map_err(io_error)?;
    writer.set_timeout(WRITE_TIMEOUT).map_err(io_error)?;
    #[cfg(target_os = "linux")]
    let own = match reopen {
        true => super::unix::reopen_blocking(fd)
            .inspect_err(|e| log::debug!("cannot open the port again for reading: {e}"))
            .ok(),
        false => None,
    };
    #[cfg(not(target_os = "linux"))]
    let _ = reopen;
    let reader = Reader {
        port: Box::new(port),
        fd,
        #[cfg(target_os = "linux")]
        own,
        burst: false,
    };
    Ok(Stream::new(Box::new(reader), Box::new(writer))
        .with_direct(super::unix::WriteNow::nonblocking(direct)))
}

/// Sets RTS as asked. Best effort, as serialport does for DTR: a pty has no modem
/// lines, and a failure here is no reason to refuse the port.
fn set_lines(port: &mut dyn SerialPort, settings: &Settings) {
    if let Some(level) = settings.rts
        && let Err(e) = port.write_request_to_send(level)
    {
        log::debug!("{}: cannot set RTS: {e}", settings.path);
    }
}

/// Converts serialport's error, keeping what the hints need: `NoDevice` is what it
/// reports for a port another program holds (EBUSY, a held lock, Windows' access
/// denied), so it becomes `ResourceBusy`.
fn io_error(error: serialport::Error) -> io::Error {
    match error.kind {
        serialport::ErrorKind::NoDevice => {
            io::Error::new(io::ErrorKind::ResourceBusy, error.description)
        }
        serialport::ErrorKind::Unknown if error.description.contains("Inappropriate ioctl") => {
            io::Error::other("not a serial port or terminal")
        }
        _ => io::Error::from(error),
    }
}

/// A read at least this long is a burst, and the next read first takes what is already
/// waiting without a poll. After a short read (a device handing over a line at a time)
/// the next read polls first: a read that finds nothing costs a tty as much as a poll
/// (it flushes the port's input buffer first), so trying one would nearly double the
/// cost of each line at a device's pace.
#[cfg(unix)]
const BURST: usize = 1024;

/// The read half: waits as long as it takes, and reports a hang-up as EOF.
struct Reader {
    port: Box<dyn SerialPort>,
    /// The port's descriptor, non-blocking, shared with the write halves.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    /// The port opened once more, blocking, for this reader alone: one `read` per
    /// wake-up, no `poll`.
    #[cfg(target_os = "linux")]
    own: Option<std::os::fd::OwnedFd>,
    /// The last read was a big one: more is likely waiting (without `own`).
    #[cfg(unix)]
    burst: bool,
}

impl Reader {
    /// Data read without serialport, or `None`: nothing came (EOF, an error, a signal),
    /// and serialport's read, which polls first, tells which.
    #[cfg(unix)]
    fn data(&mut self, buf: &mut [u8]) -> Option<usize> {
        use super::unix::{poll, read_waiting};
        #[cfg(target_os = "linux")]
        if let Some(own) = &self.own {
            use super::unix::os_result;
            use std::os::fd::AsRawFd;
            // SAFETY: reads into `buf`, valid for its length, from a descriptor we own.
            let n = unsafe { libc::read(own.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            return os_result(n).ok().filter(|&n| n > 0);
        }
        if !self.burst {
            // No timeout: no timer to set up and cancel for every line.
            let mut fds = [libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            let _ = poll(&mut fds, None);
        }
        let n = read_waiting(self.fd, buf);
        self.burst = n >= BURST;
        (n > 0).then_some(n)
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            #[cfg(unix)]
            if let Some(n) = self.data(buf) {
                return Ok(n);
            }
            match self.port.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_path_is_8n1_without_baud() {
        let s: Settings = "/dev/ttyACM0".parse().unwrap();
        assert_eq!(s, Settings::new("/dev/ttyACM0"));
        assert_eq!(s.baud, None);
    }

    #[test]
    fn every_setting_parses() {
        let s: Settings = "/dev/ttyUSB0,baud=115200,data=7,parity=even,stop=2,flow=hardware"
            .parse()
            .unwrap();
        assert_eq!(s.path, "/dev/ttyUSB0");
        assert_eq!(s.baud, Some(115200));
        assert_eq!(s.data, DataBits::Seven);
        assert_eq!(s.parity, Parity::Even);
        assert_eq!(s.stop, StopBits::Two);
        assert_eq!(s.flow, FlowControl::Hardware);
        let s: Settings = "COM3,data=5,parity=odd,stop=1,flow=software"
            .parse()
            .unwrap();
        assert_eq!(s.path, "COM3");
        assert_eq!(s.data, DataBits::Five);
        assert_eq!(s.parity, Parity::Odd);
        assert_eq!(s.flow, FlowControl::Software);
        let s: Settings = "x,data=6,parity=none,flow=none".parse().unwrap();
        assert_eq!(s.data, DataBits::Six);
        assert_eq!(s.parity, Parity::None);
        assert_eq!(s.flow, FlowControl::None);
    }

    #[test]
    fn arduino_settings_parse() {
        let s: Settings = "/dev/ttyACM0,dtr=off,rts=on,hupcl=off,settle=2000"
            .parse()
            .unwrap();
        assert_eq!(s.dtr, Some(false));
        assert_eq!(s.rts, Some(true));
        assert_eq!(s.hupcl, Some(false));
        assert_eq!(s.settle, Some(Duration::from_millis(2000)));
        let s: Settings = "/dev/ttyACM0".parse().unwrap();
        assert_eq!((s.dtr, s.rts, s.hupcl, s.settle), (None, None, None, None));
    }

    #[test]
    fn bad_settings_quote_the_token() {
        for (text, token, why) in [
            ("/dev/x,baud=fast", "'baud=fast'", "whole number"),
            ("/dev/x,baud=0", "'baud=0'", "whole number"),
            ("/dev/x,data=9", "'data=9'", "5, 6, 7 or 8"),
            ("/dev/x,parity=mark", "'parity=mark'", "none, odd or even"),
            ("/dev/x,stop=3", "'stop=3'", "1 or 2"),
            (
                "/dev/x,flow=rts",
                "'flow=rts'",
                "none, software or hardware",
            ),
            ("/dev/x,speed=9600", "'speed=9600'", "unknown setting"),
            ("/dev/x,115200", "'115200'", "key=value"),
            ("/dev/x,baud=1,baud=2", "'baud=2'", "given twice"),
            ("/dev/x,dtr=low", "'dtr=low'", "on or off"),
            ("/dev/x,hupcl=0", "'hupcl=0'", "on or off"),
            ("/dev/x,settle=2s", "'settle=2s'", "milliseconds"),
            ("/dev/x,", "''", "key=value"),
        ] {
            let error = text.parse::<Settings>().unwrap_err();
            assert!(error.starts_with("/dev/x: bad setting "), "{error}");
            assert!(error.contains(token), "{error}");
            assert!(error.contains(why), "{error}");
        }
        assert!(
            ",baud=9600"
                .parse::<Settings>()
                .unwrap_err()
                .contains("missing port path")
        );
    }

    #[test]
    fn busy_becomes_resource_busy() {
        let e = io_error(serialport::Error::new(
            serialport::ErrorKind::NoDevice,
            "busy",
        ));
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        let e = io_error(serialport::Error::new(
            serialport::ErrorKind::Io(io::ErrorKind::NotFound),
            "No such file or directory",
        ));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
