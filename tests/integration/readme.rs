//! The README's examples, run: every fenced `sh` block marked `<!-- runnable: ... -->`
//! runs against the built binary, with ptys standing in for device paths and loopback
//! for other machines, and the marker's steps check what the README says happens.
//!
//! A block's lines run one after the other, as a user would type them. A bridge
//! (`serial-bridge` with two endpoints) runs in the background until the block is done,
//! and the next line waits until it logs "bridging"; a line ending in `&` runs in the
//! background; anything else runs to its end. Each command that names `/dev/ttyACM0`
//! (and the like) gets a device of its own, numbered from 1 in order. `/tmp/` becomes a
//! folder of the test's, `first-machine` loopback.
//!
//! Steps, separated by `;`: `write N "text"` into device N; `read N "text"` from it;
//! `expect "text"` in what the commands printed; `log N "text"` in bridge N's log;
//! `file NAME "text"` made before the commands run; `http PORT "PATH" "text"` in a page;
//! `pasted`: the block runs as one script, as if pasted into a shell at once, with no
//! waiting between its lines (so a demo that races its own bridge fails here).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serial_bridge::escape::unescape;

use crate::util::{PATIENCE, Pty, read_exactly, spawn, write_all};

/// One marked block: where it is, its steps and its command lines.
#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    steps: Vec<Vec<String>>,
    commands: Vec<String>,
}

/// The marked blocks of README.md and docs/*.md.
fn blocks() -> Vec<Block> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for path in files {
        let file = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).expect("read a markdown file");
        blocks.extend(blocks_in(&file, &text));
    }
    blocks
}

/// The marked blocks of one file, `file` its name for messages.
fn blocks_in(file: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(marker) = line
            .strip_prefix("<!-- runnable")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        assert_eq!(
            lines.get(i + 1),
            Some(&"```sh"),
            "{file}:{}: a runnable marker goes right before a ```sh block",
            i + 1
        );
        let steps = marker
            .trim_start_matches(':')
            .split(';')
            .map(words)
            .filter(|step| !step.is_empty())
            .collect();
        let commands = lines[i + 2..]
            .iter()
            .take_while(|line| **line != "```")
            .map(|line| strip_comment(line))
            .filter(|line| !line.is_empty())
            .collect();
        blocks.push(Block {
            file: file.to_string(),
            line: i + 1,
            steps,
            commands,
        });
    }
    blocks
}

/// A step's words; a "quoted" word may hold spaces.
fn words(step: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = step.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("a closing quote in the marker");
            words.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

/// A command line without its trailing `# comment`.
fn strip_comment(line: &str) -> String {
    let line = line.trim();
    if line.starts_with('#') {
        return String::new();
    }
    match line.find("  #") {
        Some(at) => line[..at].trim().to_string(),
        None => line.to_string(),
    }
}

/// Output collected from background commands.
type Sink = Arc<Mutex<Vec<u8>>>;

fn collect(mut from: impl Read + Send + 'static, into: &Sink) {
    let into = Arc::clone(into);
    thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

fn contains(sink: &Sink, text: &[u8]) -> bool {
    let data = sink.lock().unwrap();
    data.windows(text.len().max(1)).any(|w| w == text)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A block being run: its folder, devices, and background processes.
struct Run {
    dir: std::path::PathBuf,
    devices: Vec<Pty>,
    bridges: Vec<(Child, Sink)>,
    others: Vec<Child>,
    out: Sink,
    /// A pasted block's shell, the leader of its own process group.
    pasted: Option<Child>,
}

impl Run {
    /// The command as it runs here: devices, /tmp and other machines stood in for.
    fn rewrite(&mut self, command: &str) -> String {
        // The Quick start's install: the binary built for the tests stands in for it
        // (scripts/quickstart proves that line itself, from a fresh clone).
        if command.starts_with("cargo install") {
            return ":".into();
        }
        let mut out = command.replace("/tmp/", &format!("{}/", self.dir.display()));
        out = out.replace("first-machine", "127.0.0.1");
        for prefix in ["/dev/ttyACM", "/dev/ttyUSB"] {
            while let Some(at) = out.find(prefix) {
                let end = out[at + prefix.len()..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(out.len(), |e| at + prefix.len() + e);
                let pty = Pty::new();
                let link = self.dir.join(format!("dev{}", self.devices.len() + 1));
                std::os::unix::fs::symlink(&pty.path, &link).unwrap();
                self.devices.push(pty);
                out.replace_range(at..end, &link.display().to_string());
            }
        }
        out.replace(
            "serial-bridge ",
            &format!("{} ", env!("CARGO_BIN_EXE_serial-bridge")),
        )
    }

    fn shell(&self, command: &str) -> Command {
        let mut c = Command::new("bash");
        c.args(["-c", &format!("exec {command}")])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `commands` as one script, as pasted into a shell, in a process group of its
    /// own (its background jobs outlive it until [`Run::finish`]).
    fn paste(&mut self, commands: &[String]) {
        let script: Vec<String> = commands.iter().map(|c| self.rewrite(c)).collect();
        let mut shell = Command::new("setsid");
        shell
            .args(["bash", "-c", &script.join("\n")])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut shell);
        collect(child.stdout.take().unwrap(), &self.out);
        collect(child.stderr.take().unwrap(), &self.out);
        self.pasted = Some(child);
    }

    fn start(&mut self, line: &str) {
        let background = line.ends_with('&');
        let command = self.rewrite(line.trim_end_matches('&').trim());
        let bridge = line.starts_with("serial-bridge ")
            && !line.contains('|')
            && !["--list", "--help", "--version"]
                .iter()
                .any(|o| line.contains(o));
        if bridge || background {
            // As in a terminal: stdin stays open (and empty) while the bridge runs.
            let mut child = spawn(self.shell(&command).stdin(Stdio::piped()));
            collect(child.stdout.take().unwrap(), &self.out);
            if bridge {
                let log: Sink = Arc::default();
                collect(child.stderr.take().unwrap(), &log);
                wait_for(&format!("{line}: bridging"), || contains(&log, b"bridging"));
                self.bridges.push((child, log));
            } else {
                self.others.push(child);
            }
            return;
        }
        let child = spawn(&mut self.shell(&command));
        let output = child.wait_with_output().unwrap();
        self.out.lock().unwrap().extend_from_slice(&output.stdout);
        assert!(
            output.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn step(&mut self, step: &[String]) {
        let text = |i: usize| unescape(&step[i]).expect("escapes in the marker");
        let device = |i: usize| step[i].parse::<usize>().expect("a device number") - 1;
        match step[0].as_str() {
            "write" => write_all(&mut self.devices[device(1)].master, &text(2)),
            "read" => {
                let want = text(2);
                let got = read_exactly(&mut self.devices[device(1)].master, want.len(), PATIENCE);
                assert_eq!(got, want, "{step:?}");
            }
            "expect" => wait_for(&format!("{step:?}"), || contains(&self.out, &text(1))),
            "log" => {
                let log = &self.bridges[device(1)].1;
                wait_for(&format!("{step:?}"), || contains(log, &text(2)));
            }
            "http" => {
                let mut page = String::new();
                let mut stream =
                    TcpStream::connect(("127.0.0.1", step[1].parse().unwrap())).unwrap();
                write!(
                    stream,
                    "GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    step[2]
                )
                .unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                stream.read_to_string(&mut page).unwrap();
                assert!(page.contains(&step[3]), "{step:?}: {page}");
            }
            "file" | "pasted" => {}
            other => panic!("unknown step {other}"),
        }
    }

    /// Stops the bridges, the last started first (a client before its server): each
    /// must end with exit 0 on SIGINT, as the README promises.
    fn finish(mut self) {
        for (mut child, log) in self.bridges.drain(..).rev() {
            // SAFETY: kill has no memory effects; the pid is our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let status = child.wait().unwrap();
            let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
            assert_eq!(status.code(), Some(0), "{log}");
        }
        for mut child in self.others.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut shell) = self.pasted.take() {
            // Its background jobs ignore SIGINT (bash does that without job control):
            // SIGTERM, as a service manager would, then whatever is left is killed.
            let group = -(shell.id() as libc::pid_t);
            // SAFETY: kill has no memory effects; the group is our child's own.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let _ = shell.wait();
            // SAFETY: as above; signal 0 only asks whether the group still exists.
            wait_for("the pasted block's jobs to end", || unsafe {
                libc::kill(group, 0) != 0
            });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_readme_examples_do_what_it_says() {
    let blocks = blocks();
    assert!(
        blocks.len() >= 6,
        "the runnable blocks went missing: {blocks:?}"
    );
    for (n, block) in blocks.into_iter().enumerate() {
        eprintln!("{}:{}: {:?}", block.file, block.line, block.commands);
        let dir = std::env::temp_dir().join(format!("sb-readme-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut run = Run {
            dir,
            devices: Vec::new(),
            bridges: Vec::new(),
            others: Vec::new(),
            out: Arc::default(),
            pasted: None,
        };
        for step in block.steps.iter().filter(|s| s[0] == "file") {
            let content = unescape(&step[2]).unwrap();
            std::fs::write(run.dir.join(&step[1]), content).unwrap();
        }
        if block.steps.iter().any(|s| s[0] == "pasted") {
            run.paste(&block.commands);
        } else {
            for command in &block.commands {
                run.start(command);
            }
        }
        for step in &block.steps {
            run.step(step);
        }
        run.finish();
    }
}
