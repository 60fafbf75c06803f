//! serial-bridge: bridges two endpoints, line by line and byte for byte.
//!
//! The data flow, from the command line to the wire:
//!
//! 1. argv → [`cli::Args`] (argh) → [`cli::Config`]: validated, every string parsed;
//!    each positional argument becomes an [`endpoint::Spec`], the rest
//!    [`bridge::Options`]. No raw strings go further.
//! 2. [`bridge::run`] opens each spec: [`endpoint::Spec::open`] → [`endpoint::Endpoint`],
//!    which carries everything the bridge needs to know of it and how to start it
//!    (the one contract, [`endpoint::contract`]).
//! 3. Sources: a reader thread per byte stream ([`endpoint::Stream`]), or the
//!    endpoint's own threads, one inlet per client. Each source cuts what it reads into
//!    pieces with a [`framing::Framer`] and hands them on through its direction's lane:
//!    straight to the other endpoint when nothing is queued for it (the direct route),
//!    otherwise as one [`framing::Batch`] per read on a bounded channel (the queued
//!    route).
//! 4. The dispatcher selects over both channels, the stop channel and writer failures,
//!    taking whichever is ready first, and hands each batch to the writer thread of the
//!    other endpoint. It alone decides when to stop.
//! 5. The writer puts it out, unchanged, through the endpoint's outbox.
//!
//! Dependencies point one way: `main → cli → bridge → endpoint → framing`; `escape`,
//! `error` and `words` serve them all. Errors are [`error::Error`]: one line each, with an exit code.

#![warn(missing_docs)]

pub mod bridge;
pub mod cli;
pub mod endpoint;
pub mod error;
pub mod escape;
pub mod framing;
pub mod words;
