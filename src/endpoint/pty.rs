//! `pty`, `pty:LINK`: a new pseudo-terminal, so any program that only speaks serial
//! can attach to the bridge by opening its path.
//!
//! The bridge keeps the terminal's own side (the slave) open as well, so a program
//! that attaches, leaves and comes back never causes a hang-up; lines for it wait in
//! the terminal's buffer meanwhile. With `pty:LINK` a symlink at LINK points to the
//! terminal (a stale symlink there is replaced; anything else is refused) and is
//! removed when the bridge ends.

use std::io;
use std::path::PathBuf;

use log::info;
use serialport::{SerialPort, TTYPort};

use super::Shape;
use super::serial::tty_stream;

/// Creates the pseudo-terminal, and the symlink `link` to it, as the endpoint `name`.
pub fn open(name: &str, link: Option<&str>) -> io::Result<Shape> {
    let (master, slave) = TTYPort::pair().map_err(io::Error::from)?;
    let path = slave.name().unwrap_or_default();
    let mut guard = Guard {
        _slave: slave,
        link: None,
    };
    match link {
        Some(link) => {
            let link = PathBuf::from(link);
            if let Ok(meta) = std::fs::symlink_metadata(&link) {
                if !meta.file_type().is_symlink() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a symlink", link.display()),
                    ));
                }
                std::fs::remove_file(&link)?;
            }
            std::os::unix::fs::symlink(&path, &link)?;
            info!(
                "{name}: pseudo-terminal {path}, linked from {}",
                link.display()
            );
            guard.link = Some(link);
        }
        None => info!("{name}: pseudo-terminal {path}"),
    }
    let mut stream = tty_stream(master)?;
    stream.guard = Some(Box::new(guard));
    Ok(Shape::Stream(stream))
}

/// Holds the slave side open, and removes the symlink when dropped.
struct Guard {
    _slave: TTYPort,
    link: Option<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}
