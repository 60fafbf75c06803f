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
    use std::io;
    use std::path::{Path, PathBuf};

    use log::info;
    use serialport::{SerialPort, TTYPort};

    use crate::endpoint::contract::Endpoint;
    use crate::endpoint::serial::tty_stream;
    use crate::endpoint::unix::device_of;

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
        let halves = tty_stream(master)?.with_guard(guard);
        Ok(Endpoint::new(name, halves).holding(device_of(Path::new(&path))))
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
