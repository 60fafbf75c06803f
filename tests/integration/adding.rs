//! docs/adding-an-endpoint.md, kept true: its worked example (`unix://PATH`) is the
//! code below, compiled, opened like any endpoint and bridged to a socket pair.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use serial_bridge::bridge::{self, Options};
use serial_bridge::endpoint::{Defaults, Spec};

use crate::util::{PATIENCE, read_exactly};

mod example {
    use std::any::Any;
    use std::io;
    use std::os::unix::net::UnixStream;

    use serial_bridge::endpoint::{Endpoint, Kind, Opening, Stream, WriteNow};

    /// `unix://PATH`: a client of a Unix socket, a byte stream.
    #[derive(Debug)]
    pub struct Unix {
        path: String,
    }

    /// Parses what follows `unix://`; `text` is the whole argument, for messages.
    pub fn parse(text: &str, rest: &str) -> Result<Unix, String> {
        match rest {
            "" => Err(format!("{text}: missing the socket path")),
            path => Ok(Unix {
                path: path.to_string(),
            }),
        }
    }

    impl Kind for Unix {
        fn name(&self) -> String {
            format!("unix://{}", self.path)
        }

        fn open(&self, opening: &Opening<'_>) -> io::Result<Endpoint> {
            let socket = UnixStream::connect(&self.path)?;
            let reader = Box::new(socket.try_clone()?);
            let writer = Box::new(socket.try_clone()?);
            let halves = Stream::new(reader, writer).with_direct(WriteNow::socket(socket.into()));
            Ok(Endpoint::new(opening.name, halves))
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }
}

/// The code block of docs/adding-an-endpoint.md, without whitespace.
fn readme_example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/adding-an-endpoint.md");
    let section = std::fs::read_to_string(path).expect("docs/adding-an-endpoint.md");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a rust block");
    block.split_whitespace().collect()
}

#[test]
fn the_readme_example_is_this_code() {
    let this = include_str!("adding.rs");
    let start = this.find("use std::any::Any;").unwrap();
    let end = this.find("/// The code block of docs").unwrap();
    let code: String = this[start..end].split_whitespace().collect();
    // The module's closing brace is not the README's.
    let code = code.strip_suffix('}').unwrap();
    assert_eq!(
        readme_example(),
        code,
        "docs/adding-an-endpoint.md and tests/integration/adding.rs differ"
    );
}

#[test]
fn the_example_kind_bridges_and_explains_its_failures() {
    let dir = std::env::temp_dir().join(format!("serial-bridge-adding-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);
    let text = format!("unix://{}", path.display());
    let spec = Spec::of(example::parse(&text, &path.to_string_lossy()).unwrap());
    let never = || false;
    let missing = spec
        .open(&Defaults::default(), &never)
        .unwrap_err()
        .to_string();
    assert_eq!(
        missing,
        format!("{text}: cannot open: no such file or directory (os error 2)")
    );
    assert!(
        example::parse("unix://", "")
            .unwrap_err()
            .contains("missing the socket path")
    );

    let listener = UnixListener::bind(&path).unwrap();
    let endpoint = spec.open(&Defaults::default(), &never).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let other = serial_bridge::endpoint::Endpoint::new(
        "other",
        serial_bridge::endpoint::Stream::new(
            Box::new(theirs.try_clone().unwrap()),
            Box::new(theirs),
        ),
    );
    let (stop_tx, stop) = bounded(1);
    let handle = thread::spawn(move || bridge::bridge(endpoint, other, &Options::default(), stop));
    let mut ours = ours;
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    ours.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    peer.write_all(b"to the other\n").unwrap();
    assert_eq!(read_exactly(&mut ours, 13, PATIENCE), b"to the other\n");
    ours.write_all(b"\x00\xff back\n").unwrap();
    assert_eq!(read_exactly(&mut peer, 8, PATIENCE), b"\x00\xff back\n");
    stop_tx.send(()).unwrap();
    handle.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
