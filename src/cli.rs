//! The command line: argh's [`Args`] (what the user typed) become a [`Command`]
//! (what to do, validated, with no raw strings left).
//!
//! Every check on the arguments lives here, and every message tells the user what to
//! type instead. Field doc comments on [`Args`] are the `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use simplelog::LevelFilter;

use crate::bridge::Options;
use crate::endpoint::Spec;
use crate::error::Error;
use crate::framing::{DEFAULT_DELIMITER, DEFAULT_MAX_LINE, Framing};

/// The baud rate for ports that set none: what Arduino sketches start with.
pub const DEFAULT_BAUD: u32 = 9600;

/// Bridge two endpoints (serial ports, TCP, stdin/stdout, a pty): every complete
/// line read on one is written to the other, byte for byte.
#[derive(FromArgs, Debug)]
#[argh(
    example = "Bridge two Arduinos at 9600 baud:\n  $ {command_name} /dev/ttyACM0 /dev/ttyACM1",
    example = "Different speeds, CRLF-terminated lines:\n  $ {command_name} --delimiter '\\r\\n' /dev/ttyUSB0,baud=115200 /dev/ttyACM0",
    example = "A binary protocol such as Firmata, byte for byte:\n  $ {command_name} --raw --baud 57600 COM3 COM4",
    example = "Expose an Arduino to the network (this machine only without 0.0.0.0):\n  $ {command_name} /dev/ttyACM0 tcp-listen://0.0.0.0:5000",
    note = "A port is a serial port PATH[,key=value]... (baud=N, data=5-8, parity=none|odd|even, stop=1|2, flow=none|software|hardware; default 8N1, no flow control), tcp://HOST:PORT (or socket://), tcp-listen://[ADDR:]PORT, - for stdin/stdout, or pty[:LINK].",
    error_code(0, "stopped by Ctrl-C, SIGTERM or SIGHUP, or stdin ended"),
    error_code(1, "a port failed or closed while running"),
    error_code(2, "bad arguments"),
    error_code(3, "a port could not be opened")
)]
pub struct Args {
    /// the two ports to bridge, A and B
    #[argh(positional, arg_name = "PORT")]
    pub ports: Vec<String>,

    /// baud rate for ports that set none (default 9600)
    #[argh(option)]
    pub baud: Option<u32>,

    /// no framing: forward bytes as they arrive (binary protocols)
    #[argh(switch)]
    pub raw: bool,

    /// line delimiter; escapes \n \r \t \0 \xNN work (default \n)
    #[argh(option)]
    pub delimiter: Option<String>,

    /// longest line in bytes; longer runs go out in pieces of this size (default 4096)
    #[argh(option)]
    pub max_line: Option<usize>,

    /// forward a partial line after MS milliseconds of silence (default: never)
    #[argh(option, arg_name = "MS")]
    pub flush_after: Option<u64>,

    /// clients a tcp-listen:// endpoint serves at once (default 1)
    #[argh(option, arg_name = "N")]
    pub max_clients: Option<usize>,

    /// when a port goes away (or is missing at start), keep running and open it
    /// again until it is back
    #[argh(switch)]
    pub reconnect: bool,

    /// after opening a serial port, hold lines for it MS milliseconds (a board's
    /// bootloader ignores input after the reset that opening causes); per port: settle=MS
    #[argh(option, arg_name = "MS")]
    pub settle: Option<u64>,

    /// lines kept for a port that is down; the oldest go first (default 256)
    #[argh(option, arg_name = "N")]
    pub queue: Option<usize>,

    /// log lines, bytes, drops and reconnects per direction every SECS seconds
    #[argh(option, arg_name = "SECS")]
    pub stats: Option<u64>,

    /// log every forwarded line (debug level)
    #[argh(switch, short = 'v')]
    pub verbose: bool,

    /// log errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,

    /// log level: off, error, warn, info, debug or trace (overrides -v and -q)
    #[argh(option)]
    pub log_level: Option<LevelFilter>,

    /// also write the log to this file
    #[argh(option, arg_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// log forwarded data as a hex and ASCII dump (implies -v)
    #[argh(switch)]
    pub hex: bool,

    /// list the serial ports present, with USB details, and exit
    #[argh(switch)]
    pub list: bool,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Print this text (`--help`) to stdout.
    Help(String),
    /// Print the version.
    Version,
    /// List serial ports.
    List,
    /// Run the bridge.
    Bridge(Box<Config>),
}

/// A validated bridge configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The first endpoint.
    pub a: Spec,
    /// The second endpoint.
    pub b: Spec,
    /// How data is framed and logged.
    pub bridge: Options,
    /// Where the log goes.
    pub log: LogConfig,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The most detailed level shown.
    pub level: LevelFilter,
    /// A file that receives the log too.
    pub file: Option<PathBuf>,
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    let args: Vec<String> = args
        .into_iter()
        .map(|arg| arg.into_string())
        .collect::<Result<_, _>>()
        .map_err(|arg| Error::Usage(format!("{arg:?}: not valid UTF-8")))?;
    let args = shield_stdio(args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match Args::from_args(&["serial-bridge"], &args) {
        Ok(args) => args.into_command(),
        Err(exit) if exit.status.is_ok() => Ok(Command::Help(exit.output)),
        Err(exit) => Err(Error::Usage(format!(
            "{} (see --help)",
            exit.output.trim_end().replace('\n', "; ")
        ))),
    }
}

/// Stands in for a bare `-` (stdin and stdout) while argh parses, which would
/// otherwise take it for an unknown option. No real argument holds a NUL.
const STDIO_TOKEN: &str = "\0-";

/// Replaces each bare `-` given as a port with [`STDIO_TOKEN`]; `-` as the value of
/// an option, or after `--`, is left alone.
fn shield_stdio(mut args: Vec<String>) -> Vec<String> {
    const TAKES_VALUE: [&str; 10] = [
        "--settle",
        "--queue",
        "--stats",
        "--baud",
        "--delimiter",
        "--max-line",
        "--flush-after",
        "--max-clients",
        "--log-level",
        "--log-file",
    ];
    for i in 0..args.len() {
        if args[i] == "--" {
            break;
        }
        let is_value = i > 0 && TAKES_VALUE.contains(&args[i - 1].as_str());
        if args[i] == "-" && !is_value {
            args[i] = STDIO_TOKEN.to_string();
        }
    }
    args
}

impl LogConfig {
    /// Sends the log to stderr, and to the log file if one is set.
    pub fn install(&self) -> Result<(), Error> {
        use simplelog::{CombinedLogger, ConfigBuilder, SharedLogger, WriteLogger};
        let mut builder = ConfigBuilder::new();
        builder
            .set_thread_level(LevelFilter::Off)
            .set_target_level(LevelFilter::Off);
        let config = builder.build();
        // The journal stamps every line itself; the log file keeps our time.
        let stderr_config = if stderr_is_journal() {
            builder.set_time_level(LevelFilter::Off).build()
        } else {
            config.clone()
        };
        let mut loggers: Vec<Box<dyn SharedLogger>> = vec![WriteLogger::new(
            self.level,
            stderr_config,
            std::io::stderr(),
        )];
        if let Some(path) = &self.file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::Setup {
                    what: format!("--log-file {}", path.display()),
                    source,
                })?;
            loggers.push(WriteLogger::new(self.level, config, file));
        }
        // Only fails if a logger is already installed, as in a second call from tests.
        let _ = CombinedLogger::init(loggers);
        Ok(())
    }
}

/// Whether stderr is systemd's journal. systemd sets `JOURNAL_STREAM` to the
/// `DEVICE:INODE` of the journal's socket; it counts only if stderr is that socket,
/// not for a child that inherited the variable but writes elsewhere.
#[cfg(unix)]
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// There is no journal off Unix.
#[cfg(not(unix))]
fn stderr_is_journal() -> bool {
    false
}

impl Args {
    /// Validates the arguments.
    pub fn into_command(self) -> Result<Command, Error> {
        let usage = |message: String| Error::Usage(message);
        if self.version {
            return Ok(Command::Version);
        }
        if self.list {
            return Ok(Command::List);
        }
        let ports: Vec<&str> = self
            .ports
            .iter()
            .map(|p| if p == STDIO_TOKEN { "-" } else { p.as_str() })
            .collect();
        let [a, b] = ports[..] else {
            return Err(usage(
                "two ports are needed, e.g. `serial-bridge /dev/ttyACM0 /dev/ttyACM1` \
                 (see --help, or --list for the ports present)"
                    .into(),
            ));
        };
        let baud = match self.baud {
            Some(0) => return Err(usage("--baud must be at least 1".into())),
            Some(baud) => baud,
            None => DEFAULT_BAUD,
        };
        let settle = self.settle.map(Duration::from_millis);
        let a = a
            .parse::<Spec>()
            .map_err(usage)?
            .with_defaults(baud, settle);
        let b = b
            .parse::<Spec>()
            .map_err(usage)?
            .with_defaults(baud, settle);
        if same_endpoint(&a, &b) {
            return Err(usage(format!(
                "{a}: given as both ports; a bridge needs two different ports"
            )));
        }
        let framing = if self.raw {
            for (given, flag) in [
                (self.delimiter.is_some(), "--delimiter"),
                (self.max_line.is_some(), "--max-line"),
                (self.flush_after.is_some(), "--flush-after"),
            ] {
                if given {
                    return Err(usage(format!(
                        "{flag} has no effect with --raw, which forwards bytes as they arrive"
                    )));
                }
            }
            Framing::Raw
        } else {
            let delimiter = match &self.delimiter {
                Some(text) => {
                    unescape(text).map_err(|why| usage(format!("--delimiter '{text}': {why}")))?
                }
                None => DEFAULT_DELIMITER.to_vec(),
            };
            let max_line = match self.max_line {
                Some(0) => return Err(usage("--max-line must be at least 1".into())),
                Some(n) => n,
                None => DEFAULT_MAX_LINE,
            };
            Framing::Lines {
                delimiter,
                max_line,
            }
        };
        let flush_after = match self.flush_after {
            Some(0) => {
                return Err(usage(
                    "--flush-after must be at least 1 ms (use --raw to forward at once)".into(),
                ));
            }
            ms => ms.map(Duration::from_millis),
        };
        let level = self.log_level.unwrap_or(if self.quiet {
            LevelFilter::Error
        } else if self.verbose || self.hex {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
        let stats = match self.stats {
            Some(0) => return Err(usage("--stats must be at least 1 second".into())),
            secs => secs.map(Duration::from_secs),
        };
        if self.queue.is_some() && !self.reconnect {
            return Err(usage(
                "--queue only matters with --reconnect, which keeps lines for a port that is down"
                    .into(),
            ));
        }
        let max_clients = match self.max_clients {
            Some(0) => return Err(usage("--max-clients must be at least 1".into())),
            Some(n) => n,
            None => 1,
        };
        Ok(Command::Bridge(Box::new(Config {
            a,
            b,
            bridge: Options {
                framing,
                flush_after,
                hex: self.hex,
                max_clients,
                reconnect: self.reconnect,
                queue: self.queue.unwrap_or(crate::bridge::DEFAULT_QUEUE),
                stats,
            },
            log: LogConfig {
                level,
                file: self.log_file,
            },
        })))
    }
}

/// Whether two specs name the same device, following links such as
/// `/dev/serial/by-id/...` where the paths exist.
fn same_endpoint(a: &Spec, b: &Spec) -> bool {
    let (a, b) = (a.to_string(), b.to_string());
    match (std::fs::canonicalize(&a), std::fs::canonicalize(&b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Turns `\r\n`, `\0`, `\x1b` and friends into bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'"') => b'"',
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let digits: Option<Vec<u8>> = hex.into_iter().collect();
                digits
                    .and_then(|d| u8::from_str_radix(std::str::from_utf8(&d).ok()?, 16).ok())
                    .ok_or("\\x needs two hex digits, e.g. \\x03")?
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape '\\{}'; use \\n \\r \\t \\0 \\\\ or \\xNN",
                    other as char
                ));
            }
            None => return Err("ends with a lone '\\'; write \\\\ for a backslash".into()),
        });
    }
    if out.is_empty() {
        return Err("the delimiter must be at least one byte".into());
    }
    Ok(out)
}

/// The inverse of [`unescape`], for logs: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out += "\\n",
            b'\r' => out += "\\r",
            b'\t' => out += "\\t",
            0 => out += "\\0",
            b'\\' => out += "\\\\",
            b'"' => out += "\\\"",
            b' '..=b'~' => out.push(b as char),
            _ => out += &format!("\\x{b:02x}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, Error> {
        super::parse(args.iter().map(OsString::from))
    }

    fn config(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Bridge(config)) => *config,
            other => panic!("{other:?}"),
        }
    }

    fn baud(spec: &Spec) -> Option<u32> {
        match spec {
            Spec::Serial(settings) => settings.baud,
            other => panic!("not serial: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        match parse(args) {
            Err(Error::Usage(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&["/dev/ttyACM0", "/dev/ttyACM1"]);
        assert_eq!(c.a.to_string(), "/dev/ttyACM0");
        assert_eq!(c.b.to_string(), "/dev/ttyACM1");
        assert_eq!(baud(&c.a), Some(9600));
        assert_eq!(c.bridge.framing, Framing::default());
        assert_eq!(c.bridge.flush_after, None);
        assert_eq!(c.log.level, LevelFilter::Info);
    }

    #[test]
    fn baud_default_only_fills_ports_without_one() {
        let c = config(&["--baud", "57600", "/dev/a,baud=115200", "/dev/b"]);
        assert_eq!(baud(&c.a), Some(115200));
        assert_eq!(baud(&c.b), Some(57600));
    }

    #[test]
    fn framing_options() {
        let c = config(&[
            "--delimiter",
            "\\r\\n",
            "--max-line",
            "80",
            "/dev/a",
            "/dev/b",
        ]);
        assert_eq!(
            c.bridge.framing,
            Framing::Lines {
                delimiter: b"\r\n".to_vec(),
                max_line: 80
            }
        );
        assert_eq!(
            config(&["--raw", "/dev/a", "/dev/b"]).bridge.framing,
            Framing::Raw
        );
        let c = config(&["--flush-after", "250", "/dev/a", "/dev/b"]);
        assert_eq!(c.bridge.flush_after, Some(Duration::from_millis(250)));
    }

    #[test]
    fn reconnect_options() {
        let c = config(&["--reconnect", "--queue", "0", "--stats", "5", "/a", "/b"]);
        let settle = |spec: &Spec| match spec {
            Spec::Serial(settings) => settings.settle,
            _ => None,
        };
        assert_eq!(settle(&c.a), None);
        let c2 = config(&["--settle", "1500", "/a,settle=10", "/b"]);
        assert_eq!(settle(&c2.a), Some(Duration::from_millis(10)));
        assert_eq!(settle(&c2.b), Some(Duration::from_millis(1500)));
        assert!(c.bridge.reconnect);
        assert_eq!(c.bridge.queue, 0);
        assert_eq!(c.bridge.stats, Some(Duration::from_secs(5)));
        let c = config(&["/a", "/b"]);
        assert!(!c.bridge.reconnect);
        assert_eq!(c.bridge.queue, crate::bridge::DEFAULT_QUEUE);
    }

    #[test]
    fn log_levels() {
        assert_eq!(config(&["-v", "/a", "/b"]).log.level, LevelFilter::Debug);
        assert_eq!(config(&["-q", "/a", "/b"]).log.level, LevelFilter::Error);
        assert_eq!(config(&["--hex", "/a", "/b"]).log.level, LevelFilter::Debug);
        let c = config(&["-q", "--log-level", "trace", "/a", "/b"]);
        assert_eq!(c.log.level, LevelFilter::Trace);
    }

    #[test]
    fn a_bare_dash_is_stdio() {
        let c = config(&["-", "/dev/ttyACM0"]);
        assert_eq!(c.a, Spec::Stdio);
        let c = config(&["--", "/dev/ttyACM0", "-"]);
        assert_eq!(c.b, Spec::Stdio);
        assert!(usage_error(&["-", "-"]).contains("given as both"));
    }

    #[test]
    fn list_and_version_need_no_ports() {
        assert!(matches!(parse(&["--list"]), Ok(Command::List)));
        assert!(matches!(parse(&["--version"]), Ok(Command::Version)));
    }

    #[test]
    fn bad_arguments_say_what_to_type() {
        assert!(usage_error(&["/dev/a"]).contains("two ports are needed"));
        assert!(usage_error(&["/dev/a", "/dev/a"]).contains("given as both ports"));
        assert!(usage_error(&["/dev/a,baud=x", "/dev/b"]).contains("bad setting 'baud=x'"));
        assert!(usage_error(&["--max-line", "0", "/a", "/b"]).contains("at least 1"));
        assert!(usage_error(&["--baud", "0", "/a", "/b"]).contains("at least 1"));
        assert!(usage_error(&["--flush-after", "0", "/a", "/b"]).contains("at least 1"));
        assert!(usage_error(&["--raw", "--delimiter", "x", "/a", "/b"]).contains("--raw"));
        assert!(usage_error(&["--delimiter", "", "/a", "/b"]).contains("at least one byte"));
        assert!(usage_error(&["--delimiter", "\\q", "/a", "/b"]).contains("unknown escape"));
        assert!(usage_error(&["--baud", "fast", "/a", "/b"]).contains("--baud"));
        assert!(usage_error(&["--queue", "5", "/a", "/b"]).contains("--reconnect"));
        assert!(usage_error(&["--stats", "0", "/a", "/b"]).contains("at least 1"));
        assert!(usage_error(&["--max-clients", "0", "/a", "/b"]).contains("at least 1"));
    }

    #[test]
    fn escapes_round_trip() {
        assert_eq!(unescape("\\r\\n").unwrap(), b"\r\n");
        assert_eq!(unescape("\\0\\x03\\xFF;").unwrap(), b"\0\x03\xff;");
        assert_eq!(unescape("\\\\").unwrap(), b"\\");
        assert!(unescape("\\x3").is_err());
        assert!(unescape("\\xzz").is_err());
        assert!(unescape("ab\\").is_err());
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
    }
}
