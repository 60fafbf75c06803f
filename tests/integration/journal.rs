//! Logging under systemd: when stderr is the journal (`JOURNAL_STREAM` names it),
//! log lines leave out the time, which the journal adds itself.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// Runs a bridge that ends at once (stdin is empty) with stderr going to a file,
/// and `JOURNAL_STREAM` set by `journal`; returns what it logged.
fn log_of(label: &str, journal: impl Fn(&File) -> Option<String>) -> String {
    let path = std::env::temp_dir().join(format!(
        "serial-bridge-journal-{}-{label}.log",
        std::process::id()
    ));
    let file = File::create(&path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_serial-bridge"));
    command
        .args(["-", "tcp-listen://127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file.try_clone().unwrap())
        .env_remove("JOURNAL_STREAM");
    if let Some(value) = journal(&file) {
        command.env("JOURNAL_STREAM", value);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    log
}

/// `HH:MM:SS ` at the start of a line.
fn starts_with_time(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 9
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b' '
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

#[test]
fn journal_stream_on_stderr_drops_the_time() {
    let stamped = log_of("plain", |_| None);
    assert!(stamped.contains("[INFO] bridging"), "{stamped}");
    assert!(stamped.lines().all(starts_with_time), "{stamped}");

    let journal = log_of("journal", |file| {
        let meta = file.metadata().unwrap();
        Some(format!("{}:{}", meta.dev(), meta.ino()))
    });
    assert!(journal.contains("[INFO] bridging"), "{journal}");
    assert!(
        journal.lines().all(|line| line.starts_with('[')),
        "{journal}"
    );

    // A stream that is not stderr (a variable inherited from a parent) changes nothing.
    let inherited = log_of("inherited", |_| Some("1:1".into()));
    assert!(inherited.lines().all(starts_with_time), "{inherited}");
}
