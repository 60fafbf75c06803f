//! The serial-bridge binary: a switchboard from the command line to `bridge::run`.

use std::io::IsTerminal;
use std::process::ExitCode;

use serial_bridge::bridge;
use serial_bridge::cli::{self, Command};
use serial_bridge::endpoint::usb;
use serial_bridge::error::{self, Error};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // An argument may hold control characters; a terminal must not act on them.
            let message: String = error
                .to_string()
                .chars()
                .map(|c| match c.is_control() {
                    true => c.escape_unicode().to_string(),
                    false => c.to_string(),
                })
                .collect();
            eprintln!("serial-bridge: {message}");
            error.exit_code()
        }
    }
}

fn run() -> Result<(), Error> {
    match cli::parse(std::env::args_os().skip(1))? {
        Command::Help(text) => error::write_stdout(&text)?,
        Command::Version => {
            error::write_stdout(&format!("serial-bridge {}\n", env!("CARGO_PKG_VERSION")))?
        }
        Command::List => usb::list::print(false)?,
        Command::ListJson => usb::list::print(true)?,
        Command::Bridge(config) => {
            config.log.install()?;
            let (stop_tx, stop) = crossbeam_channel::bounded(1);
            // Ctrl-C, SIGTERM and SIGHUP (the `termination` feature) only ask to stop.
            // A terminal has just echoed `^C` where the next log line would start: end
            // that line first.
            // Before the stop is asked for, or the stopping log could come first.
            let terminal = std::io::stderr().is_terminal();
            let asked = std::sync::atomic::AtomicBool::new(false);
            ctrlc::set_handler(move || {
                if terminal && !asked.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    eprintln!();
                }
                let _ = stop_tx.try_send(());
            })
            .map_err(|e| Error::Setup {
                what: "cannot handle signals".into(),
                source: std::io::Error::other(e),
            })?;
            bridge::run_hub(&config.ports, &config.bridge, stop)?;
        }
    }
    Ok(())
}
