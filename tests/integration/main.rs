//! Integration tests, built as one binary: `inproc` drives `bridge::bridge` over
//! socket pairs; `pty` runs the real binary between pseudo-terminal pairs; `cli` checks
//! the command line's messages and exit codes.

mod bench;
mod cli;
mod endpoints;
mod inproc;
mod journal;
mod pty;
mod reconnect;
mod soak;
mod util;
