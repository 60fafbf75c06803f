//! Where the log goes: stderr (without the time when stderr is systemd's journal,
//! which stamps lines itself) and, with `--log-file`, a file too.

use std::path::PathBuf;

use simplelog::LevelFilter;

use crate::error::Error;

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The most detailed level shown.
    pub level: LevelFilter,
    /// A file that receives the log too.
    pub file: Option<PathBuf>,
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
                .map_err(|source| Error::LogFile {
                    path: path.display().to_string(),
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
