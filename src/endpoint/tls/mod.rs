//! TLS for the network endpoints: `tls://` and `tls-listen://` (a byte stream, as TCP),
//! `wss://` and `wss-listen://`, `mqtts://`. One [`wire::Wire`] carries plain TCP or
//! TLS for every endpoint, so each runs the same code over either; [`settings`] are the
//! settings they all take, [`config`] turns them into rustls configurations (ring, the
//! system's roots or Mozilla's), and `explain.rs` turns a failed handshake into one
//! line with its fix.

pub mod config;
pub mod explain;
pub mod settings;
pub mod wire;
