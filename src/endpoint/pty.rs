//! `pty`, `pty:LINK`: a new pseudo-terminal, so any program that only speaks serial
//! can attach to the bridge by opening its path.
//!
//! The bridge keeps the terminal's own side (the slave) open as well, so a program
//! that attaches, leaves and comes back never causes a hang-up; lines for it wait in
//! the terminal's buffer meanwhile.
//!
//! With `pty:LINK` a symlink at LINK points to the terminal. The link is only ever
//! made where nothing is (the `symlink` call fails if anything got there first), or in
//! place of a dangling symlink, which an earlier bridge left behind. A link to
//! something that exists (another bridge's terminal) or any other file is refused. At
//! the end the link is removed only if it is still the one this bridge made, pointing
//! where it pointed: a file someone put there meanwhile is left alone.
//!
//! Across from a remote port (`rfc2217://`), on Linux, the terminal passes on the
//! settings its program makes: the master runs in packet mode (`TIOCPKT`) and the
//! terminal has `EXTPROC` set, so each `tcsetattr` of the program shows up at the
//! master as a `TIOCPKT_IOCTL` packet; the bridge reads the new settings and sends the
//! ones that changed to the remote port. The terminal starts with the remote port's
//! settings, so a program that reads them sees the truth. A pty has no modem lines: a
//! program's DTR and RTS cannot be seen, and are not passed on.

use std::any::Any;
use std::io;

use super::contract::{Endpoint, Kind, Opening, Place};

/// `pty` or `pty:LINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pty {
    /// Where to make a symlink to the terminal, if anywhere.
    pub link: Option<String>,
}

/// Parses `pty` or `pty:LINK`.
pub fn parse(text: &str) -> Result<Pty, String> {
    match text.strip_prefix("pty:") {
        None => Ok(Pty { link: None }),
        Some("") => Err(format!("{text}: missing the link path after 'pty:'")),
        Some(link) => Ok(Pty {
            link: Some(link.to_string()),
        }),
    }
}

impl Kind for Pty {
    fn name(&self) -> String {
        match &self.link {
            None => "pty".into(),
            Some(link) => format!("pty:{link}"),
        }
    }

    #[cfg(unix)]
    fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
        unix::open(opening.name, self.link.as_deref())
    }

    #[cfg(not(unix))]
    fn open(&self, _: &Opening<'_>) -> io::Result<Endpoint> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pseudo-terminals exist on Unix only; use a virtual COM port pair instead",
        ))
    }

    /// Its link, where it has one; each `pty` without one is a new terminal.
    fn place(&self) -> Place {
        match &self.link {
            None => Place::New,
            Some(link) => Place::Path(link.clone()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(unix)]
mod unix {
    use std::io::{self, Read};
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};

    use log::{debug, info};
    use serialport::{SerialPort, TTYPort};

    use crate::endpoint::contract::{Endpoint, GiveUp, Inbox, Running, Start};
    use crate::endpoint::control::{ControlLink, Line};
    use crate::endpoint::serial::tty_stream;
    use crate::endpoint::unix::{device_of, os_result};

    /// Creates the pseudo-terminal, and the symlink `link` to it, as the endpoint `name`.
    pub fn open(name: &str, link: Option<&str>) -> io::Result<Endpoint> {
        let (master, slave) = TTYPort::pair().map_err(io::Error::from)?;
        let path = slave.name().unwrap_or_default();
        let mut guard = Guard {
            _slave: slave,
            link: None,
        };
        if let Some(link) = link {
            let link = PathBuf::from(link);
            make_link(&link, &path)?;
            info!(
                "{name}: pseudo-terminal {path}, linked from {}",
                link.display()
            );
            guard.link = Some((link, PathBuf::from(&path)));
        } else {
            info!("{name}: pseudo-terminal {path}");
        }
        let start = PtyStart { master, guard };
        Ok(Endpoint::new(name, start).holding(device_of(Path::new(&path))))
    }

    /// A terminal made, not started: whether it passes settings on is known only once
    /// the port across is.
    struct PtyStart {
        master: TTYPort,
        guard: Guard,
    }

    impl Start for PtyStart {
        fn start(
            self: Box<Self>,
            name: &str,
            inbox: Box<dyn Inbox>,
            give_up: GiveUp,
        ) -> io::Result<Running> {
            let PtyStart { master, guard } = *self;
            let link = inbox.control();
            let remote = link.get().filter(|c| c.remote());
            let watch = match remote {
                Some(control) if cfg!(target_os = "linux") => {
                    Some(watch(&master, &guard._slave, control.line())?)
                }
                _ => None,
            };
            let mut stream = tty_stream(master, false)?.with_guard(guard);
            if let Some((terminal, line)) = watch {
                info!("{name}: a program's settings go on to the remote port");
                let name = name.to_string();
                stream = stream.map_reader(|inner| {
                    Box::new(Packets {
                        inner,
                        terminal,
                        line,
                        link,
                        name,
                    })
                });
            }
            Box::new(stream).start(name, inbox, give_up)
        }
    }

    /// Sets the terminal to `line`, turns on packet mode and `EXTPROC`: a handle to
    /// read its settings from, and the settings.
    fn watch(master: &TTYPort, slave: &TTYPort, line: Line) -> io::Result<(TTYPort, Line)> {
        let mut terminal = master.try_clone_native().map_err(io::Error::from)?;
        terminal.set_baud_rate(line.baud)?;
        terminal.set_data_bits(line.data)?;
        terminal.set_parity(line.parity)?;
        terminal.set_stop_bits(line.stop)?;
        terminal.set_flow_control(line.flow)?;
        let on: libc::c_int = 1;
        // SAFETY: TIOCPKT reads one int, which lives on this stack for the call.
        os_result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCPKT, &on) } as isize)?;
        // SAFETY: termios is plain data, filled by tcgetattr from a descriptor that
        // stays open over both calls.
        unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            os_result(libc::tcgetattr(slave.as_raw_fd(), &mut termios) as isize)?;
            termios.c_lflag |= libc::EXTPROC;
            os_result(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios) as isize)?;
        }
        let line = read_line(&terminal).unwrap_or(line);
        Ok((terminal, line))
    }

    /// The terminal's settings, read through the master.
    fn read_line(terminal: &TTYPort) -> io::Result<Line> {
        Ok(Line {
            baud: terminal.baud_rate()?,
            data: terminal.data_bits()?,
            parity: terminal.parity()?,
            stop: terminal.stop_bits()?,
            flow: terminal.flow_control()?,
        })
    }

    /// A status packet says the terminal's settings changed.
    const TIOCPKT_IOCTL: u8 = 0x40;

    /// The master's read half in packet mode: each read is a status byte, then data
    /// when the status is 0. Settings changes go on to the port across.
    struct Packets {
        inner: Box<dyn Read + Send>,
        terminal: TTYPort,
        /// The settings last passed on.
        line: Line,
        link: ControlLink,
        name: String,
    }

    impl Packets {
        fn changed(&mut self) {
            let Ok(line) = read_line(&self.terminal) else {
                return;
            };
            if line == self.line {
                return;
            }
            self.line = line;
            let name = &self.name;
            match self.link.get().map(|c| c.set_line(&line)) {
                Some(Ok(())) => info!("{name}: its program set {line}; sent to the remote port"),
                Some(Err(e)) => info!("{name}: its program set {line}; not sent: {e}"),
                None => debug!("{name}: its program set {line}; the remote port is down"),
            }
        }
    }

    impl Read for Packets {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                let n = self.inner.read(buf)?;
                match buf[..n] {
                    [] => return Ok(0),
                    [0, ..] if n > 1 => {
                        buf.copy_within(1..n, 0);
                        return Ok(n - 1);
                    }
                    [status, ..] if status & TIOCPKT_IOCTL != 0 => self.changed(),
                    _ => {}
                }
            }
        }
    }

    /// Makes the symlink `link` -> `target`, replacing only a dangling symlink.
    fn make_link(link: &Path, target: &str) -> io::Result<()> {
        let shown = link.display();
        match std::fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let to = std::fs::read_link(link).unwrap_or_default();
                if std::fs::metadata(link).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{shown} already links to {}, which exists (another bridge's \
                         terminal?); pick another LINK, or remove {shown} if nothing uses it",
                            to.display()
                        ),
                    ));
                }
                // Dangling: left behind by an earlier bridge.
                std::fs::remove_file(link)?;
            }
            // A command that wrote to the link before a bridge made it leaves a file.
            Ok(meta) if meta.is_file() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{shown} is a regular file, not a link (something wrote to it before \
                         a bridge made the link?); remove it (rm {shown}) if nothing needs \
                         it, or pick another LINK"
                    ),
                ));
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{shown} exists and is not a symlink; pick another LINK"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(target, link).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{shown} was made by someone else just now; pick another LINK"),
            ),
            _ => e,
        })
    }

    /// Holds the slave side open, and removes the symlink when dropped.
    struct Guard {
        _slave: TTYPort,
        /// The link made, and where it points.
        link: Option<(PathBuf, PathBuf)>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some((link, target)) = &self.link
                && std::fs::read_link(link).is_ok_and(|now| now == *target)
            {
                let _ = std::fs::remove_file(link);
            }
        }
    }
}
