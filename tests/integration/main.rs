//! Integration tests, built as one binary: `inproc` drives `bridge::bridge` over
//! socket pairs; `pty` runs the real binary between pseudo-terminal pairs; `cli` checks
//! the command line's messages and exit codes; `usb` the USB selectors' messages and
//! exit codes.

mod adding;
mod bench;
mod cli;
mod coalesce;
mod endpoints;
mod hub;
mod inproc;
mod journal;
mod layout;
mod mqtt;
mod pty;
mod readme;
mod reconnect;
mod rfc2217;
mod soak;
mod tls;
mod udp;
mod usb;
mod util;
mod ws;
