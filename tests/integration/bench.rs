//! A tiny run of scripts/bench, so the harness and its references cannot rot.

use std::path::Path;
use std::process::Command;

use crate::util::have;

/// Runs `scripts/bench --smoke` with `mode` (`--ws`, `--udp` or nothing) and `bridges`;
/// checks it exited 0 and drew its plot; returns its stdout and its JSON report.
fn smoke(tag: &str, mode: &[&str], bridges: &[String]) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("bench-{tag}-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let (json, svg) = (out.join("bench.json"), out.join("bench.svg"));
    let mut bench = Command::new("python3");
    bench
        .arg(root.join("scripts/bench"))
        .args(mode)
        .arg("--smoke");
    for bridge in bridges {
        bench.arg("--bridge").arg(bridge);
    }
    bench.arg("--json").arg(&json).arg("--svg").arg(&svg);
    let output = bench.output().expect("run scripts/bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(&out).unwrap();
    (stdout, report)
}

#[test]
fn bench_smoke_runs_every_reference_without_loss() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = env!("CARGO_BIN_EXE_serial-bridge");
    let mut bridges = vec![
        // With --stats, the summary says what share went straight through.
        format!("mine={exe} --log-level info --stats 86400 {{a}} {{b}}"),
        format!("mine-raw={exe} -q --raw {{a}} {{b}}"),
        "loop=@loop".to_string(),
    ];
    if have("socat", &["-V"]) {
        bridges.push("socat=socat -b65536 {a},raw,echo=0 {b},raw,echo=0".into());
    }
    if have("python3", &["-c", "import serial_asyncio"]) {
        let script = root.join("scripts/py_bridge.py");
        bridges.push(format!("python=python3 {} {{a}} {{b}}", script.display()));
    }
    let (stdout, report) = smoke("pty", &[], &bridges);
    assert_eq!(
        report.matches("\"status\": \"OK\"").count(),
        2 * bridges.len(),
        "{report}"
    );
    for scenario in ["latency", "oneway", "twoway", "slow"] {
        let key = format!("\"direct_{scenario}\"");
        assert!(report.contains(&key), "no share for {scenario}: {report}");
    }
    for name in ["mine", "mine-raw", "loop"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(name)),
            "{stdout}"
        );
    }
}

#[test]
fn bench_smoke_runs_the_websocket_scenarios_without_loss() {
    let exe = env!("CARGO_BIN_EXE_serial-bridge");
    let mine = format!("mine={exe} -q {{a}} ws-listen://127.0.0.1:{{port}}");
    let (stdout, report) = smoke("ws", &["--ws"], &[mine]);
    // The bridge and the client's own ceiling, each in the summary and its round.
    assert_eq!(report.matches("\"status\": \"OK\"").count(), 4, "{report}");
    // Invalid UTF-8, NUL, CR and an empty line went both ways unchanged.
    assert_eq!(
        report.matches("\"bytes\": \"exact\"").count(),
        2,
        "{report}"
    );
    assert!(stdout.contains("mine: bytes exact"), "{stdout}");
}

#[test]
fn bench_smoke_runs_the_udp_scenarios_without_loss() {
    let exe = env!("CARGO_BIN_EXE_serial-bridge");
    let mut bridges = vec![format!("mine={exe} -q {{a}} udp://127.0.0.1:{{port}}")];
    if have("socat", &["-V"]) {
        bridges.push("socat=socat -b65536 {a},raw,echo=0 UDP:127.0.0.1:{port}".into());
    }
    let (_, report) = smoke("udp", &["--udp"], &bridges);
    assert_eq!(
        report.matches("\"status\": \"OK\"").count(),
        2 * bridges.len(),
        "{report}"
    );
    assert!(report.contains("\"datagrams_per_s_out\""), "{report}");
}

#[test]
fn bench_smoke_runs_the_hub_scenarios_without_loss() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json = std::env::temp_dir().join(format!("bench-hub-smoke-{}.json", std::process::id()));
    let output = Command::new("python3")
        .arg(root.join("scripts/bench"))
        .args(["--hub", "--smoke", "--peers", "1,3"])
        .arg("--bridge")
        .arg(format!("mine={}", env!("CARGO_BIN_EXE_serial-bridge")))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run scripts/bench --hub");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("mine x1") && stdout.contains("mine x3"),
        "{stdout}"
    );
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"cpu_us_per_line\""), "{report}");
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn bench_smoke_runs_the_rfc2217_scenarios_against_ser2net() {
    if !have("ser2net", &["-v"]) || !have("python3", &["-c", "import serial.rfc2217"]) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json =
        std::env::temp_dir().join(format!("bench-rfc2217-smoke-{}.json", std::process::id()));
    let output = Command::new("python3")
        .arg(root.join("scripts/bench"))
        .args(["--rfc2217", "--smoke", "--bridge"])
        .arg(format!("mine={}", env!("CARGO_BIN_EXE_serial-bridge")))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run scripts/bench --rfc2217");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for row in [
        "serial-bridge rfc2217-listen://",
        "ser2net telnet(rfc2217), chardelay: false",
    ] {
        assert!(stdout.contains(row), "{stdout}");
    }
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"seconds_per_change\""), "{report}");
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn bench_smoke_runs_tls_next_to_the_plain_protocols() {
    if !crate::mqtt::broker::have_mosquitto()
        || !have("python3", &["-c", "import websockets"])
        || !have("openssl", &["version"])
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json = std::env::temp_dir().join(format!("bench-tls-smoke-{}.json", std::process::id()));
    let output = Command::new("python3")
        .arg(root.join("scripts/bench"))
        .args(["--tls", "--smoke", "--bridge"])
        .arg(format!("mine={}", env!("CARGO_BIN_EXE_serial-bridge")))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run scripts/bench --tls");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for row in [
        "| mqtts:// |",
        "| mqtt:// |",
        "| wss-listen:// <-> wss:// |",
        "| ws-listen:// <-> ws:// |",
    ] {
        assert!(stdout.contains(row), "{stdout}");
    }
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"idle_wakeups_per_s\""), "{report}");
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn bench_smoke_loads_the_console_page_in_chromium() {
    if !have("python3", &["-c", "import selenium, websockets"])
        || !have("/usr/bin/chromedriver", &["--version"])
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("scripts/bench"))
        .args([
            "--page",
            "--smoke",
            "--bridge",
            env!("CARGO_BIN_EXE_serial-bridge"),
        ])
        .output()
        .expect("run scripts/bench --page");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("long tasks > 50 ms"), "{stdout}");
}

#[test]
fn bench_smoke_runs_the_device_pace_rows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(root.join("scripts/bench"))
        .args(["--pace", "--smoke", "--clients", "1,3", "--bridge"])
        .arg(format!("mine={}", env!("CARGO_BIN_EXE_serial-bridge")))
        .output()
        .expect("run scripts/bench --pace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| CPU µs/line | wake-ups/line | latency µs, median | 99% |"),
        "{stdout}"
    );
    for row in [
        "| pty <-> pty | mine |",
        "| pty -> tcp-listen, 1 client | mine |",
        "| pty -> tcp-listen, 3 clients | mine |",
        "| pty -> hub of 3 tcp:// peers | mine |",
        "| pty -> ws-listen, 3 clients | mine |",
        "| pty -> rfc2217-listen, 3 clients | mine |",
        "| pty <-> pty | mine --coalesce 100 |",
        "| pty -> tcp-listen, 3 clients | mine --coalesce 100 |",
        "| pty -> hub of 3 tcp:// peers | mine --coalesce 100 |",
    ] {
        // Each row's four figures (CPU, wake-ups, latency median and 99th percentile)
        // are numbers, the latencies above zero.
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {stdout}"));
        let figures: Vec<f64> = line[row.len()..]
            .split('|')
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(|cell| cell.parse().unwrap_or_else(|_| panic!("{line}")))
            .collect();
        assert!(
            figures.len() == 4 && figures[2] > 0.0 && figures[3] >= figures[2],
            "{line}"
        );
    }
    // ser2net's rows, both ways it can send, where it is installed (CI installs it).
    let ser2net = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("ser2net").is_file()));
    if ser2net {
        for row in [
            "| pty -> tcp-listen, 3 clients | ser2net (chardelay: false) |",
            "| pty -> tcp-listen, 3 clients | ser2net (chardelay: false, nodelay) |",
        ] {
            assert!(stdout.contains(row), "{stdout}");
        }
    }
}
