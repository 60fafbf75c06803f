//! serial-bridge: bridges two endpoints, line by line and byte for byte.
//!
//! The data flow, from the command line to the wire:
//!
//! 1. argv → [`cli::Args`] (argh) → [`cli::Command`]: validated, every string parsed;
//!    a port becomes an [`endpoint::Spec`].
//! 2. [`endpoint::Spec::open`] → [`endpoint::Endpoint`]: a name and plain `Read` and
//!    `Write` halves.
//! 3. [`bridge::run`] starts a reader thread per endpoint. Each reads, cuts what it
//!    reads into lines with a [`framing::Framer`] and sends the lines of each read as
//!    one [`framing::Batch`] on a bounded channel.
//! 4. The dispatcher selects over both channels and the stop channel, taking whichever
//!    is ready first, and hands each batch to the writer thread of the other endpoint.
//! 5. The writer writes it, unchanged.
//!
//! Errors are [`error::Error`]: one line each, with an exit code.

#![warn(missing_docs)]

pub mod bridge;
pub mod cli;
pub mod endpoint;
pub mod error;
pub mod framing;
