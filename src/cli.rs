//! The command line: argh's [`Args`] (what the user typed) become a [`Command`]
//! (what to do, validated, with no raw strings left).
//!
//! Every check on the arguments lives here, and every message tells the user what to
//! type instead. Field doc comments on [`Args`] are the `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;

use argh::FromArgs;
use simplelog::LevelFilter;

use crate::bridge::Options;
use crate::endpoint::Spec;
use crate::endpoint::contract::DEFAULT_BAUD;
use crate::endpoint::schemes;
use crate::error::{Error, exit};
use crate::escape::unescape;
use crate::framing::{DEFAULT_DELIMITER, DEFAULT_MAX_LINE, Framing, MAX_MAX_LINE};

mod check;
mod log;
mod usage;

pub use log::LogConfig;

use check::{Unit, bounded_wait, check_log_file, coalesce_window, same_endpoint};

/// Bridge two endpoints (serial ports, TCP, WebSocket, MQTT, UDP, stdin/stdout, a
/// pty): every complete line read on one is written to the other, byte for byte. Give
/// more for a hub: the first (the device) talks with each of the others (its peers).
#[derive(FromArgs, Debug)]
#[argh(
    example = "Bridge two Arduinos at 9600 baud:\n  $ {command_name} /dev/ttyACM0 /dev/ttyACM1",
    example = "No board at hand? A virtual null-modem cable: programs on /tmp/ttyA and /tmp/ttyB talk through it:\n  $ {command_name} pty:/tmp/ttyA pty:/tmp/ttyB",
    example = "Different speeds, CRLF-terminated lines:\n  $ {command_name} --delimiter '\\r\\n' /dev/ttyUSB0,baud=115200 /dev/ttyACM0",
    example = "A binary protocol such as Firmata, byte for byte:\n  $ {command_name} --raw --baud 57600 COM3 COM4",
    example = "Expose an Arduino to the network (this machine only without 0.0.0.0):\n  $ {command_name} /dev/ttyACM0 tcp-listen://0.0.0.0:5000",
    example = "A board's lines in a browser, at http://localhost:8080/:\n  $ {command_name} /dev/ttyACM0 ws-listen://8080",
    example = "Name a board, not a port (--list prints the selector), and follow it across replugs:\n  $ {command_name} --reconnect usb:2341:0043:85735313233351F0B1E1,baud=115200 -",
    example = "Put a board on an MQTT broker, lines out on one topic and in from another:\n  $ {command_name} /dev/ttyACM0 mqtt://broker,pub=lab/uno1,sub=lab/uno2",
    example = "One board, many peers (a hub): on MQTT and in the browser at once:\n  $ {command_name} --reconnect usb:2341:0043 mqtt://broker,pub=lab/uno,sub=lab/uno/in ws-listen://8080"
)]
pub struct Args {
    /// the endpoints to bridge: A and B, or a device and its peers (below)
    #[argh(positional, arg_name = "ENDPOINT")]
    pub ports: Vec<String>,

    /// baud rate for ports that set none (default 9600)
    #[argh(option, arg_name = "RATE")]
    pub baud: Option<u32>,

    /// no framing: forward bytes as they arrive (binary protocols)
    #[argh(switch)]
    pub raw: bool,

    /// line delimiter; escapes \n \r \t \0 \xNN work (default \n)
    #[argh(option, arg_name = "TEXT")]
    pub delimiter: Option<String>,

    /// longest line in bytes; longer runs go out in pieces of this size (default 4096)
    #[argh(option, arg_name = "BYTES")]
    pub max_line: Option<usize>,

    /// forward a partial line after MS milliseconds of silence (default: never)
    #[argh(option, arg_name = "MS")]
    pub flush_after: Option<u64>,

    /// clients a listening endpoint serves at once (default 1 for tcp-listen://,
    /// 16 for ws-listen://, 16 peers for udp-listen://)
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

    /// at a fast serial port's pace, let its lines wait up to US microseconds to share
    /// a read: less CPU per line, at most US µs more latency (default 0: read at once)
    #[argh(option, arg_name = "US")]
    pub coalesce: Option<u64>,

    /// lines kept for a port that is down, or waiting for a peer of a hub that falls
    /// behind; the oldest go first (default 256)
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
    #[argh(option, arg_name = "LEVEL")]
    pub log_level: Option<LevelFilter>,

    /// also write the log to this file
    #[argh(option, arg_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// log forwarded data as a hex and ASCII dump (implies -v)
    #[argh(switch)]
    pub hex: bool,

    /// list the serial ports present, with the usb:... selector naming each USB
    /// one, and exit
    #[argh(switch)]
    pub list: bool,

    /// with --list: print JSON, for scripts
    #[argh(switch)]
    pub json: bool,

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
    /// List serial ports as JSON.
    ListJson,
    /// Run the bridge.
    Bridge(Box<Config>),
}

/// A validated bridge configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The endpoints: the device, then its peers (one for a plain bridge, more for a
    /// hub).
    pub ports: Vec<Spec>,
    /// How data is framed and logged.
    pub bridge: Options,
    /// Where the log goes.
    pub log: LogConfig,
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    let args: Vec<String> = args
        .into_iter()
        .map(|arg| arg.into_string())
        .collect::<Result<_, _>>()
        .map_err(|arg| Error::Usage(format!("{arg:?}: not valid UTF-8")))?;
    // argh takes a bare `-` (stdin and stdout) for an unknown option, so every one
    // stands in as STDIO_TOKEN while argh parses, and is put back after.
    let args: Vec<&str> = args
        .iter()
        .map(|arg| {
            if arg == "-" {
                STDIO_TOKEN
            } else {
                arg.as_str()
            }
        })
        .collect();
    match Args::from_args(&["serial-bridge"], &args) {
        Ok(args) => args.unshield().into_command(),
        Err(exit) if exit.status.is_ok() => Ok(Command::Help(
            with_value_names(&exit.output) + &schemes::help() + &exit_codes(),
        )),
        Err(exit) => {
            let help = match Args::from_args(&["serial-bridge"], &["--help"]) {
                Err(help) => help.output,
                Ok(_) => String::new(),
            };
            let output = exit.output.replace(STDIO_TOKEN, "-");
            Err(Error::Usage(format!(
                "{} (see --help)",
                usage::rewrite(&output, &help)
            )))
        }
    }
}

/// argh's help with each option's value name after it in the options list
/// (`--baud RATE`), as the usage line names it (`[--baud <RATE>]`).
fn with_value_names(help: &str) -> String {
    let usage = help.lines().next().unwrap_or_default();
    let mut out = String::new();
    for line in help.lines() {
        let option = line
            .strip_prefix("  --")
            .and_then(|rest| rest.split(' ').next());
        let value = option.and_then(|name| {
            let at = usage.find(&format!("[--{name} <"))? + name.len() + 5;
            usage[at..].split('>').next()
        });
        match (option, value) {
            (Some(name), Some(value)) if line.len() > 20 => {
                let both = format!("--{name} {value}");
                match both.len() + 2 <= 18 {
                    true => out += &format!("  {both:<18}{}\n", &line[20..]),
                    false => out += &format!("  {both}\n{:20}{}\n", "", &line[20..]),
                }
            }
            _ => out += &format!("{line}\n"),
        }
    }
    out
}

/// The exit codes for `--help`, from their one list in error.rs, as argh would show them.
fn exit_codes() -> String {
    let mut text = "\nExit codes:\n".to_string();
    for (code, meaning) in exit::CODES {
        text += &format!("  {code} {meaning}\n");
    }
    text
}

/// Stands in for a bare `-` while argh parses. No real argument holds a NUL.
const STDIO_TOKEN: &str = "\0-";

impl Args {
    /// Puts back every bare `-` that stood in as [`STDIO_TOKEN`]: a port, or the value
    /// of an option (`--delimiter -`, `--log-file -`).
    fn unshield(mut self) -> Args {
        let back = |text: &mut String| {
            if text == STDIO_TOKEN {
                *text = "-".into();
            }
        };
        self.ports.iter_mut().for_each(back);
        self.delimiter.as_mut().map(back);
        if self.log_file.as_deref() == Some(std::path::Path::new(STDIO_TOKEN)) {
            self.log_file = Some("-".into());
        }
        self
    }

    /// Validates the arguments.
    pub fn into_command(self) -> Result<Command, Error> {
        let usage = |message: String| Error::Usage(message);
        let alone = [(self.version, "--version"), (self.list, "--list")];
        if let (Some((_, option)), Some(extra)) =
            (alone.iter().find(|(given, _)| *given), self.ports.first())
        {
            let extra = extra.replace(STDIO_TOKEN, "-");
            return Err(usage(format!(
                "{option} takes no endpoint, but '{extra}' was given"
            )));
        }
        if self.version {
            return Ok(Command::Version);
        }
        if self.json && !self.list {
            return Err(usage(
                "--json only works with --list: `serial-bridge --list --json`".into(),
            ));
        }
        if self.list {
            return Ok(if self.json {
                Command::ListJson
            } else {
                Command::List
            });
        }
        if self.ports.len() < 2 {
            return Err(usage(
                "two ports are needed, e.g. `serial-bridge /dev/ttyACM0 /dev/ttyACM1` \
                 (see --help, or --list for the ports present)"
                    .into(),
            ));
        }
        let baud = match self.baud {
            Some(0) => return Err(usage("--baud must be at least 1".into())),
            Some(baud) => baud,
            None => DEFAULT_BAUD,
        };
        let settle = bounded_wait("--settle", self.settle, Unit::Millis, 0)?;
        let ports = self
            .ports
            .iter()
            .map(|port| port.parse::<Spec>().map_err(usage))
            .collect::<Result<Vec<Spec>, Error>>()?;
        if let Some(file) = &self.log_file {
            check_log_file(file, &ports)?;
        }
        let coalesce = coalesce_window(self.coalesce, &ports)?;
        for (i, a) in ports.iter().enumerate() {
            for b in &ports[i + 1..] {
                a.check_pair(b).map_err(usage)?;
                b.check_pair(a).map_err(usage)?;
                if same_endpoint(a, b) {
                    return Err(usage(match ports.len() {
                        2 => {
                            format!("{a}: given as both ports; a bridge needs two different ports")
                        }
                        _ => format!("{a}: given twice; each endpoint needs a port of its own"),
                    }));
                }
            }
        }
        // A remote serial port carries bytes that lines must not cut, unless the command
        // line frames lines itself.
        let frames_lines =
            self.delimiter.is_some() || self.max_line.is_some() || self.flush_after.is_some();
        let framing = if self.raw || (!frames_lines && ports.iter().any(|port| port.bytes(&ports)))
        {
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
                Some(text) => match unescape(text) {
                    Ok(bytes) if bytes.is_empty() => {
                        return Err(usage(format!(
                            "--delimiter '{text}': the delimiter must be at least one byte"
                        )));
                    }
                    Ok(bytes) => bytes,
                    Err(why) => return Err(usage(format!("--delimiter '{text}': {why}"))),
                },
                None => DEFAULT_DELIMITER.to_vec(),
            };
            let max_line = match self.max_line {
                Some(0) => return Err(usage("--max-line must be at least 1".into())),
                Some(n) if n > MAX_MAX_LINE => {
                    return Err(usage(format!(
                        "--max-line {n}: at most {MAX_MAX_LINE} (64 MiB); a longer line is \
                         forwarded in pieces of that size anyway"
                    )));
                }
                Some(n) => n,
                None => DEFAULT_MAX_LINE,
            };
            Framing::Lines {
                delimiter,
                max_line,
            }
        };
        if self.flush_after == Some(0) {
            return Err(usage(
                "--flush-after must be at least 1 ms (use --raw to forward at once)".into(),
            ));
        }
        let flush_after = bounded_wait("--flush-after", self.flush_after, Unit::Millis, 1)?;
        let level = self.log_level.unwrap_or(if self.quiet {
            LevelFilter::Error
        } else if self.verbose || self.hex {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
        let stats = bounded_wait("--stats", self.stats, Unit::Secs, 1)?;
        // A hub's peers may fall --queue lines behind, with --reconnect or not.
        if self.queue.is_some() && !self.reconnect && self.ports.len() < 3 {
            return Err(usage(
                "--queue only matters with --reconnect, which keeps lines for a port that is down, \
                 or in a hub (more than two endpoints)"
                    .into(),
            ));
        }
        if self.max_clients == Some(0) {
            return Err(usage("--max-clients must be at least 1".into()));
        }
        let max_clients = self.max_clients;
        Ok(Command::Bridge(Box::new(Config {
            ports,
            bridge: Options {
                framing,
                flush_after,
                hex: self.hex,
                max_clients,
                reconnect: self.reconnect,
                queue: self.queue.unwrap_or(crate::bridge::DEFAULT_QUEUE),
                stats,
                baud,
                settle,
                coalesce,
            },
            log: LogConfig {
                level,
                file: self.log_file,
            },
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Place;
    use crate::endpoint::serial::Settings;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Command, Error> {
        super::parse(args.iter().map(OsString::from))
    }

    fn config(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Bridge(config)) => *config,
            other => panic!("{other:?}"),
        }
    }

    /// The port's own setting, or the default `config` gives it.
    fn baud(config: &Config, spec: &Spec) -> u32 {
        let port = spec.kind::<Settings>().expect("a serial port");
        port.baud.unwrap_or(config.bridge.baud)
    }

    fn settle(config: &Config, spec: &Spec) -> Option<Duration> {
        let port = spec.kind::<Settings>().expect("a serial port");
        port.settle.or(config.bridge.settle)
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
        assert_eq!(c.ports[0].to_string(), "/dev/ttyACM0");
        assert_eq!(c.ports[1].to_string(), "/dev/ttyACM1");
        assert_eq!(baud(&c, &c.ports[0]), 9600);
        assert_eq!(c.bridge.framing, Framing::default());
        assert_eq!(c.bridge.flush_after, None);
        assert_eq!(c.log.level, LevelFilter::Info);
    }

    #[test]
    fn baud_default_only_fills_ports_without_one() {
        let c = config(&["--baud", "57600", "/dev/a,baud=115200", "/dev/b"]);
        assert_eq!(baud(&c, &c.ports[0]), 115200);
        assert_eq!(baud(&c, &c.ports[1]), 57600);
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
        assert_eq!(settle(&c, &c.ports[0]), None);
        let c2 = config(&["--settle", "1500", "/a,settle=10", "/b"]);
        assert_eq!(settle(&c2, &c2.ports[0]), Some(Duration::from_millis(10)));
        assert_eq!(settle(&c2, &c2.ports[1]), Some(Duration::from_millis(1500)));
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
        assert_eq!(c.ports[0].place(), Place::Stdio);
        let c = config(&["--", "/dev/ttyACM0", "-"]);
        assert_eq!(c.ports[1].place(), Place::Stdio);
        assert!(usage_error(&["-", "-"]).contains("given as both"));
    }

    #[test]
    fn list_and_version_need_no_ports() {
        assert!(matches!(parse(&["--list"]), Ok(Command::List)));
        assert!(matches!(
            parse(&["--list", "--json"]),
            Ok(Command::ListJson)
        ));
        assert!(usage_error(&["--json"]).contains("only works with --list"));
        assert!(usage_error(&["--json", "/a", "/b"]).contains("only works with --list"));
        assert!(matches!(parse(&["--version"]), Ok(Command::Version)));
        assert_eq!(
            usage_error(&["--list", "/dev/ttyACM0"]),
            "--list takes no endpoint, but '/dev/ttyACM0' was given"
        );
        assert!(usage_error(&["--version", "-", "x"]).contains("but '-' was given"));
    }

    #[test]
    fn coalesce_is_a_window_in_microseconds_where_a_serial_port_is() {
        assert_eq!(config(&["/a", "/b"]).bridge.coalesce, Duration::ZERO);
        let c = config(&["--coalesce", "250", "/a", "tcp://h:1"]);
        assert_eq!(c.bridge.coalesce, Duration::from_micros(250));
        let c = config(&["--coalesce", "1000000", "usb:2341:0043", "-"]);
        assert_eq!(c.bridge.coalesce, Duration::from_secs(1));
        assert!(
            usage_error(&["--coalesce", "100", "tcp-listen://5000", "-"])
                .contains("no serial port")
        );
        assert!(usage_error(&["--coalesce", "1000001", "/a", "/b"]).contains("a second"));
    }

    #[test]
    fn bad_arguments_say_what_to_type() {
        assert!(usage_error(&["/dev/a"]).contains("two ports are needed"));
        assert!(usage_error(&["/dev/a", "/dev/a"]).contains("given as both ports"));
        let twice = ["/dev/a", "tcp-listen://5000", "/dev/b", "tcp-listen://5000"];
        assert_eq!(
            usage_error(&twice),
            "tcp-listen://127.0.0.1:5000: given twice; each endpoint needs a port of its own"
        );
        // One TCP port, however it is named; UDP's port 5000 is another.
        for (a, b) in [
            ("tcp-listen://5000", "ws-listen://127.0.0.1:5000"),
            ("tcp-listen://0.0.0.0:5000", "ws-listen://5000"),
            ("udp-listen://[::]:5000", "udp-listen://5000"),
        ] {
            assert!(
                usage_error(&[a, b]).contains("given as both ports"),
                "{a} {b}"
            );
        }
        assert!(parse(&["udp-listen://5000", "tcp-listen://5000"]).is_ok());
        assert!(parse(&["tcp-listen://127.0.0.2:5000", "tcp-listen://5000"]).is_ok());
        let looped = ["/dev/a", "mqtt://h,pub=x", "mqtt://h,sub=x,client-id=y"];
        assert!(
            usage_error(&looped).contains("sub=x takes back"),
            "{}",
            usage_error(&looped)
        );
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
        assert!(
            usage_error(&[
                "mqtt://h,pub=lab/a,sub=lab/b",
                "mqtt://h,pub=lab/b,sub=lab/a"
            ])
            .contains("go round for ever")
        );
        config(&["mqtt://h,pub=x/a,sub=x/b", "mqtt://h,pub=y/a,sub=y/b"]);
        assert!(
            usage_error(&["mqtt://h,pub=a,client-id=x", "mqtt://h,pub=b,client-id=x"])
                .contains("client-id=x is the other endpoint's too")
        );
        config(&["mqtt://h,pub=a,client-id=x", "mqtt://h2,pub=b,client-id=x"]);
    }
}
