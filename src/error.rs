//! The one error type, its messages and its exit codes.
//!
//! Every variant names what failed (a port, an option) and how; `Display` is the one
//! line main prints after `serial-bridge: `, with a hint where we know one. The exit
//! code belongs to the error, so main stays a switchboard.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// Everything that can stop serial-bridge.
#[derive(Debug)]
pub enum Error {
    /// The command line is wrong; the message says what to type instead.
    Usage(String),
    /// An endpoint could not be opened at start.
    Open {
        /// The endpoint as the user named it.
        endpoint: String,
        /// Why, in one line with the hint the endpoint's kind gives
        /// ([`crate::endpoint::Kind::why`]).
        why: String,
        /// Waiting will not mend it ([`crate::endpoint::Kind::lasting`]): even
        /// `--reconnect` stops at it when the bridge starts.
        lasting: bool,
        /// The error itself.
        source: io::Error,
    },
    /// Reading from a running endpoint failed.
    Read {
        /// The endpoint as the user named it.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// Writing to a running endpoint failed.
    Write {
        /// The endpoint as the user named it.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// A running endpoint closed or hung up.
    Closed {
        /// The endpoint as the user named it.
        endpoint: String,
    },
    /// The log file cannot be opened: a bad argument.
    LogFile {
        /// The path as given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Something other than an endpoint failed: listing ports, signals, threads.
    Setup {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// Exit codes, listed once: `--help` prints [`exit::CODES`], and a test checks that the
/// README's table says the same.
pub mod exit {
    /// Stopped by a signal (Ctrl-C, SIGTERM, SIGHUP), stdin ended, or a command like
    /// `--list` done.
    pub const OK: u8 = 0;
    /// An endpoint failed or closed while the bridge ran.
    pub const FAILED: u8 = 1;
    /// Bad arguments.
    pub const USAGE: u8 = 2;
    /// An endpoint could not be opened at start.
    pub const OPEN: u8 = 3;

    /// Every code with what it means, as `--help` shows them.
    pub const CODES: [(u8, &str); 4] = [
        (OK, "stopped by Ctrl-C, SIGTERM or SIGHUP, or stdin ended"),
        (FAILED, "a port failed or closed while running"),
        (USAGE, "bad arguments"),
        (OPEN, "a port could not be opened"),
    ];
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) | Error::LogFile { .. } => exit::USAGE,
            Error::Open { .. } => exit::OPEN,
            Error::Read { .. } | Error::Write { .. } | Error::Closed { .. } => exit::FAILED,
            Error::Setup { .. } => exit::FAILED,
        })
    }

    /// Whether this is an open failure that waiting will not mend.
    pub fn is_lasting(&self) -> bool {
        matches!(self, Error::Open { lasting: true, .. })
    }
}

/// Writes `text` to stdout. A reader that went away (`| head`) ends the output
/// quietly, as for any command-line tool; any other failure (a full disk) is an error.
pub fn write_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Setup {
            what: "cannot write to stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// A short reason for an I/O error, lowercase, with a hint where one helps whatever the
/// endpoint; a kind adds its own ([`crate::endpoint::Kind::why`]).
pub fn describe(source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running, and listening on that port?)".into()
        }
        io::ErrorKind::TimedOut => format!(
            "{} (is the host up and reachable, and the port right? a firewall may drop \
             the connection)",
            lowercase_first(&source.to_string())
        ),
        io::ErrorKind::AddrInUse => {
            "address in use (another program listens on that port; pick another)".into()
        }
        _ => lowercase_first(&source.to_string()),
    }
}

/// The system's message for `error`, lowercase, without its `(os error N)` tail.
pub fn os_message(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.rsplit_once(" (os error ") {
        Some((message, _)) => message.to_string(),
        None => text,
    };
    lowercase_first(&text)
}

/// System messages start with a capital ("Input/output error"); ours are lowercase.
pub fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_ascii_uppercase() && !second.is_uppercase() => {
            first.to_ascii_lowercase().to_string() + &message[1..]
        }
        _ => message.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) => write!(f, "{message}"),
            Error::Open { endpoint, why, .. } => write!(f, "{endpoint}: cannot open: {why}"),
            Error::Read { endpoint, source } => {
                let why = describe(source);
                write!(f, "{endpoint}: read failed: {why}")?;
                if why.contains("input/output error") {
                    write!(f, " (was the device unplugged?)")?;
                }
                Ok(())
            }
            Error::Write { endpoint, source } => {
                write!(f, "{endpoint}: write failed: {}", describe(source))
            }
            Error::Closed { endpoint } => write!(f, "{endpoint}: port closed (hang-up)"),
            Error::LogFile { path, source } => {
                let why = match source.kind() {
                    io::ErrorKind::NotFound => {
                        "no such file or directory (does its folder exist?)".into()
                    }
                    io::ErrorKind::PermissionDenied => {
                        "permission denied (pick a path this user may write)".into()
                    }
                    _ => lowercase_first(&source.to_string()),
                };
                write!(f, "--log-file {path}: cannot open: {why}")
            }
            Error::Setup { what, source } => write!(f, "{what}: {}", describe(source)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(_) | Error::Closed { .. } => None,
            Error::Open { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::LogFile { source, .. }
            | Error::Setup { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_reasons_assume_no_kind() {
        let refused = describe(&io::ErrorKind::ConnectionRefused.into());
        assert!(refused.contains("is the server running"), "{refused}");
        let missing = describe(&io::Error::new(io::ErrorKind::NotFound, "No such thing"));
        assert_eq!(missing, "no such thing");
    }

    #[test]
    fn system_messages_are_lowercased() {
        let gone = io::Error::from_raw_os_error(2);
        assert_eq!(os_message(&gone), "no such file or directory");
        assert_eq!(lowercase_first("Input/output error"), "input/output error");
        assert_eq!(lowercase_first("EIO"), "EIO");
    }
}
