//! Endpoints: what the user names on the command line, and the one contract every kind
//! keeps with the bridge ([`contract`]).
//!
//! A [`Spec`] is one positional argument, parsed: a [`Kind`] (a port and its settings,
//! an address), shown in messages and compared to catch the same endpoint given twice.
//! [`Spec::open`] opens it into an [`Endpoint`]: its name, whether its end of input is a
//! normal end, how long lines for it wait after it opens, the device it holds, and how
//! to start it. Started, it hands what its sources read to inlets the bridge gives it
//! and takes what the bridge writes through its [`Outbox`] (and, when nothing is queued
//! for it, its [`Direct`] way out); [`Stop::stop`] ends it by a deadline. Whatever goes
//! wrong opening it is explained by the kind itself ([`Kind::why`]).
//!
//! A byte stream (a port, a socket, stdin and stdout) implements none of that: it hands
//! its read and write halves to [`Stream`], which runs the reader thread and the write
//! half. Kinds with threads of their own (a server and its clients, a broker
//! connection) implement [`Start`] themselves.
//!
//! Each kind is one room, and [`schemes`] holds the one line that registers it:
//!
//! | argument | kind |
//! | --- | --- |
//! | `/dev/ttyACM0,baud=115200`, `COM3` | serial port, [`serial`] |
//! | `usb:2341:0043[:SERIAL],baud=115200` | the USB serial device so named, [`usb`] |
//! | `tcp://HOST:PORT`, `socket://HOST:PORT` | TCP client, [`tcp`] |
//! | `tcp-listen://[ADDR:]PORT` | TCP server for line clients, [`listen`] |
//! | `ws://HOST:PORT[/PATH]` | WebSocket client, [`ws`] |
//! | `ws-listen://[ADDR:]PORT` | WebSocket server with a console page, [`ws`] |
//! | `mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER` | MQTT client, [`mqtt`] |
//! | `udp://HOST:PORT` | UDP, one datagram per line, [`udp`] |
//! | `udp-listen://[ADDR:]PORT` | UDP to and from the peers heard from, [`udp`] |
//! | `rfc2217-listen://[ADDR:]PORT` | the serial port across, served over RFC 2217, [`rfc2217`] |
//! | `-` | stdin and stdout, [`stdio`] |
//! | `pty`, `pty:LINK` | a new pseudo-terminal, [`pty`] (Unix) |
//!
//! Shared helpers live in leaf files every kind may use and none of which uses a
//! kind: [`contract`], [`stream`], [`coalesce`], [`settings`], and [`unix`] for what only Unix offers.

pub mod coalesce;
pub mod contract;
pub mod control;
pub mod listen;
pub mod mqtt;
pub mod pty;
pub mod rfc2217;
pub mod schemes;
pub mod serial;
pub mod settings;
mod spec;
pub mod stdio;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;
#[cfg(unix)]
pub mod unix;
pub mod usb;
pub mod ws;

pub use contract::{
    Defaults, Direct, Dropped, Endpoint, GiveUp, Inbox, Inlet, Kind, Opening, Outbox, Place,
    Running, Start, Stop, Taken,
};
pub use control::{Control, ControlLink};
pub use settings::LONGEST_WAIT;
pub use spec::Spec;
pub use stream::Stream;
#[cfg(unix)]
pub use unix::WriteNow;
