//! A short run of scripts/soak: ten unplug/replug cycles under traffic with
//! `--reconnect`, every line checked and every loss matched to the drop counters.

use std::path::Path;
use std::process::Command;

#[test]
fn ten_unplug_replug_cycles_lose_nothing_uncounted() {
    // The soak hangs terminals up with TIOCVHANGUP, which needs root.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: scripts/soak needs root");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("scripts/soak"))
        .args([
            "--cycles",
            "10",
            "--binary",
            env!("CARGO_BIN_EXE_serial-bridge"),
        ])
        .output()
        .expect("run scripts/soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("soak: PASS: 10 cycles"), "{stdout}");
}
