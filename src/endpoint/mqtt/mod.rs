//! `mqtt://[USER@]HOST[:PORT],pub=TOPIC,sub=FILTER,...`: a client of an MQTT 3.1.1
//! broker, a message endpoint. One message is one line: a line from the other side is
//! published without its delimiter, and a message on the `sub` filter reaches the other
//! side with the delimiter appended (`--raw`: bytes unchanged either way). Payloads are
//! bytes and are never converted to text.
//!
//! **Opening** (`connect.rs`) does the whole handshake before the bridge starts, so every
//! refusal is exit 3 with one clear line: the TCP connect ([`super::tcp::connect_stream`],
//! interruptible, 10 s), CONNECT and its CONNACK (bad credentials, not authorised),
//! SUBSCRIBE and its SUBACK (a filter the broker refuses), then the retained `online`
//! on the `status` topic. Messages that arrive before the SUBACK (a persistent
//! session's backlog) are kept and handed over first. The password file is read here,
//! at each connect: one that cannot be read is exit 3 like any other open failure (and
//! with `--reconnect` it is read again at each try, so a rotated password is picked
//! up).
//!
//! **Running** (`link.rs`): two threads per connection. The reader decodes packets and
//! hands each PUBLISH payload to the bridge through one inlet; the writer owns every
//! write (publishes, acknowledgements, pings, the goodbye). The bridge's writer thread
//! publishes through the outbox, which encodes a whole batch into one buffer.
//!
//! **QoS 1** (`session.rs`): every line published stays in a process-wide session until
//! its PUBACK arrives; the session outlives the connection, and when `--reconnect`
//! opens the endpoint again, what is unacknowledged goes out first with the DUP flag.
//! A line counts as written once it is in the session and on its way. The outbox does
//! not wait for each PUBACK (they queue behind the messages for the other side, so a
//! slow port there would hold back this direction); it waits once 4096 are
//! outstanding. The
//! connection keeps a persistent session at the broker (clean session off, the stable
//! client id) and subscribes at QoS 1, so messages for it wait while it is away. An
//! incoming QoS 1 message is acknowledged once the bridge has taken it (written to the
//! other side, or queued in its bounded pipeline); one it never took is not
//! acknowledged, and the broker sends it again.
//!
//! **Status**: with `status=TOPIC`, `online` is retained there after connecting, and a
//! retained `offline` is the will, which the broker publishes if the connection dies.
//! A clean stop sends DISCONNECT, which cancels the will, so the goodbye publishes the
//! retained `offline` itself first.
//!
//! The codec is hand-written (`codec.rs`): nine packet types, a page of code, no
//! dependency and no async runtime; every length from the broker is checked first.
//! MQTT over TLS (`mqtts://`, port 8883) is not supported yet.

mod codec;
mod connect;
mod connection;
mod link;
mod receive;
mod session;
mod settings;

pub use settings::{Settings, matches, parse, parse_tls};
