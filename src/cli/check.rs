//! Checks on arguments that look beyond one value: times within bounds, the same
//! endpoint given twice, a log file that is one of the ports.

use std::time::Duration;

use crate::endpoint::serial::Settings;
use crate::endpoint::{LONGEST_WAIT, Place, Spec, coalesce};
use crate::error::Error;

/// The unit an option's time is given in.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Milliseconds.
    Millis,
    /// Seconds.
    Secs,
}

/// A time option: at least `least` and at most [`LONGEST_WAIT`], in `unit`s.
pub fn bounded_wait(
    flag: &str,
    value: Option<u64>,
    unit: Unit,
    least: u64,
) -> Result<Option<Duration>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (time, most, name) = match unit {
        Unit::Millis => (Duration::from_millis(value), LONGEST_WAIT.as_millis(), "ms"),
        Unit::Secs => (
            Duration::from_secs(value),
            LONGEST_WAIT.as_secs().into(),
            "s",
        ),
    };
    if value < least {
        let name = match unit {
            Unit::Millis => "ms",
            Unit::Secs => "second",
        };
        return Err(Error::Usage(format!(
            "{flag} must be at least {least} {name}"
        )));
    }
    if u128::from(value) > most {
        return Err(Error::Usage(format!(
            "{flag} {value}: must be from {least} to {most} {name} (a day)"
        )));
    }
    Ok(Some(time))
}

/// `--coalesce`'s window: at most [`coalesce::LONGEST`], and only where a serial port
/// is given, the one kind it applies to.
pub fn coalesce_window(value: Option<u64>, ports: &[Spec]) -> Result<Duration, Error> {
    let Some(micros) = value else {
        return Ok(Duration::ZERO);
    };
    let most = coalesce::LONGEST.as_micros();
    if u128::from(micros) > most {
        return Err(Error::Usage(format!(
            "--coalesce {micros}: must be from 0 to {most} µs (a second); \
             a few hundred is plenty"
        )));
    }
    if !ports.iter().any(|port| port.kind::<Settings>().is_some()) {
        return Err(Error::Usage(
            "--coalesce applies to the reads of a serial port, and no serial port is given".into(),
        ));
    }
    Ok(Duration::from_micros(micros))
}

/// Whether two specs name the same endpoint: the same path (following links such as
/// `/dev/serial/by-id/...` where they exist; a pty's link counts as its path), or the
/// same address. Each `pty` is a new terminal and each `tcp-listen://...:0` a new port,
/// so those are never the same. (The same device under names that only meet once
/// opened, such as a pty's `/dev/pts/N`, is caught when opening.)
pub fn same_endpoint(a: &Spec, b: &Spec) -> bool {
    match (a.place(), b.place()) {
        (Place::New, _) | (_, Place::New) => false,
        (Place::Path(x), Place::Path(y)) => same_path(&x, &y),
        (Place::Listening { udp, addr: x }, Place::Listening { udp: u, addr: y }) => {
            udp == u
                && x.port() == y.port()
                && (x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified())
        }
        _ => a.to_string() == b.to_string(),
    }
}

/// Whether two paths name the same file, by their canonical forms where both exist.
fn same_path(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// Refuses a log file that is one of the bridged ports, whichever way it is named: log
/// lines would go into the device's data. A terminal of its own stays allowed.
pub fn check_log_file(file: &std::path::Path, ports: &[Spec]) -> Result<(), Error> {
    if file.as_os_str().is_empty() {
        return Err(Error::Usage("--log-file needs a path".into()));
    }
    let that_port = |port: &Spec| {
        Error::Usage(format!(
            "--log-file {}: that is the port {port}; log lines would go into its data",
            file.display()
        ))
    };
    let target = follow_links(file);
    let device = device_of(file);
    for port in ports {
        let path = match port.place() {
            Place::Stdio if same_file(file, std::path::Path::new("/dev/stdout")) => {
                return Err(that_port(port));
            }
            Place::Path(path) => path,
            _ => continue,
        };
        let same = match device {
            Some(device) => device_of(std::path::Path::new(&path)) == Some(device),
            None => same_path(&target.to_string_lossy(), &path),
        };
        if same {
            return Err(that_port(port));
        }
    }
    Ok(())
}

/// Where `path` leads through its symlinks, even to a file that does not exist yet
/// (such as a pty link the bridge is about to make).
fn follow_links(path: &std::path::Path) -> std::path::PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..16 {
        match std::fs::read_link(&path) {
            Ok(next) => {
                path = match path.parent() {
                    Some(parent) if next.is_relative() => parent.join(next),
                    _ => next,
                }
            }
            Err(_) => break,
        }
    }
    path
}

/// The device number of the character device at `path`, if it is one.
fn device_of(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        crate::endpoint::unix::device_of(path)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Whether two paths open the same file (same device and inode), where both exist.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}
