//! WebSocket endpoints: `ws://HOST:PORT[/PATH]` connects as a client;
//! `ws-listen://[ADDR:]PORT` serves WebSocket clients, and its own console page to
//! browsers. Both are message endpoints: one message is one line (`frames.rs`); what a
//! peer may not send fails its connection (`rules.rs`).
//!
//! A `ws-listen://` endpoint is the listener of `listen/` with the `Server`
//! protocol: a plain `GET /` gets the console page, an upgrade request on any path
//! becomes a client, anything else a short HTTP error. With `token=SECRET` a client
//! must ask with `?token=SECRET` (401 otherwise; browsers cannot set headers on a
//! WebSocket, so the page passes on its own URL's token). Browsers let any web page
//! open a WebSocket to `127.0.0.1`, so the `Origin` is checked: a request without one
//! (not a browser) or from the page this endpoint serves is taken; others get 403
//! unless allowed with `origin=URL`.

mod client;
mod frames;
mod http;
mod rules;
mod server;
mod settings;

pub use settings::{
    Connect, DEFAULT_KEEPALIVE, DEFAULT_WS_CLIENTS, Serve, parse_connect, parse_connect_tls,
    parse_serve, parse_serve_tls,
};
