//! The client side of a persistent QoS 1 session: lines published but not yet
//! acknowledged, kept across connections.
//!
//! With `--reconnect` the bridge reopens a lost endpoint by calling `Spec::open` again,
//! which makes a new connection with new threads. What must outlive the old connection
//! lives here, in a process-wide store keyed by broker and client id: every PUBLISH
//! sent at QoS 1 stays in [`Session`] until its PUBACK arrives, and a new connection
//! sends whatever is left first, with the DUP flag, before any new line. Packet ids
//! come from here too, so a new connection never reuses one still in flight.
//!
//! A sender does not wait for each PUBACK: they arrive on the same socket as the
//! messages for the other side, and when that side is slow they queue behind them, so
//! waiting would let a slow port hold back the direction out of it. Instead at most
//! [`UNACKED`] lines may be in flight; a sender waits for room beyond that.
//!
//! Each connection that starts takes a number and the resend in one step, under the
//! session's lock. A connection that died may still register lines (the batches the
//! bridge had already queued for it) as long as no newer connection has started: they
//! wait in the session and go out with the next connection's resend. Once a newer one
//! has started, a dead connection registers nothing, and the bridge counts those lines
//! as dropped. So no line is kept where no connection will ever send it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::codec::DUP;

/// Lines published and not yet acknowledged, at most: a few round trips' worth at any
/// rate a port reaches, a few hundred KiB at the default `--max-line`, and far below
/// the 65535 packet ids.
pub const UNACKED: usize = 4096;

/// One client's session: see the module documentation.
#[derive(Debug, Default)]
pub struct Session {
    state: Mutex<State>,
    /// Signalled when a waiter's wish comes true, or a connection dies.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The number of the latest connection that started.
    connection: u64,
    /// The last packet id handed out.
    last_pid: u16,
    /// Published, not yet acknowledged, oldest first.
    inflight: VecDeque<Entry>,
    /// A waiter wants at most this many in flight: a PUBACK wakes it only then, not
    /// at every acknowledgement.
    wanted: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    pid: u16,
    /// The encoded PUBLISH, as first sent.
    packet: Vec<u8>,
}

/// The session of `client_id` at `broker`, new or kept from an earlier connection.
pub fn of(broker: &str, client_id: &str) -> Arc<Session> {
    static STORE: OnceLock<Mutex<HashMap<String, Arc<Session>>>> = OnceLock::new();
    let store = STORE.get_or_init(Default::default);
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{broker}\0{client_id}");
    Arc::clone(store.entry(key).or_default())
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the entries are whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A packet id not in flight, for a SUBSCRIBE.
    pub fn pid(&self) -> u16 {
        self.lock().next_pid()
    }

    /// A new connection starts: its number, and every PUBLISH still in flight, oldest
    /// first, marked as a resend, with how many there are.
    pub fn begin(&self) -> (u64, Vec<u8>, usize) {
        let mut state = self.lock();
        state.connection += 1;
        let mut out = Vec::new();
        for entry in &state.inflight {
            let start = out.len();
            out.extend_from_slice(&entry.packet);
            out[start] |= DUP;
        }
        (state.connection, out, state.inflight.len())
    }

    /// Registers one PUBLISH per item of `payloads` for `connection`, encoded by
    /// `encode` with a fresh packet id, and appends them all to `out`. If the
    /// connection is `dead`, they are kept for the next one, unless a newer one has
    /// started already: then nothing is registered and the result is false.
    pub fn register<'p, E>(
        &self,
        connection: u64,
        payloads: impl Iterator<Item = &'p [u8]>,
        dead: &AtomicBool,
        out: &mut Vec<u8>,
        mut encode: E,
    ) -> bool
    where
        E: FnMut(&mut Vec<u8>, &[u8], u16),
    {
        let mut state = self.lock();
        if dead.load(Ordering::Acquire) && state.connection != connection {
            return false;
        }
        for payload in payloads {
            let pid = state.next_pid();
            let mut packet = Vec::new();
            encode(&mut packet, payload, pid);
            out.extend_from_slice(&packet);
            state.inflight.push_back(Entry { pid, packet });
        }
        true
    }

    /// Waits until at most `most` PUBLISH packets are in flight (true), or `dead` is
    /// set or `deadline` passes first (false).
    pub fn wait(&self, most: usize, dead: &AtomicBool, deadline: Option<Instant>) -> bool {
        let mut state = self.lock();
        let done = loop {
            if state.inflight.len() <= most {
                break true;
            }
            if dead.load(Ordering::Acquire) {
                break false;
            }
            state.wanted = Some(most);
            state = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                None => self.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(left) if left.is_zero() => break false,
                Some(left) => {
                    let waited = self.changed.wait_timeout(state, left);
                    waited.unwrap_or_else(|e| e.into_inner()).0
                }
            };
        };
        state.wanted = None;
        done
    }

    /// A PUBACK for `pid` arrived.
    pub fn ack(&self, pid: u16) {
        let mut state = self.lock();
        if let Some(at) = state.inflight.iter().position(|e| e.pid == pid) {
            state.inflight.remove(at);
            if state
                .wanted
                .is_some_and(|most| state.inflight.len() <= most)
            {
                self.changed.notify_all();
            }
        }
    }

    /// Sets `dead` under the session's lock and wakes every waiter.
    pub fn kill(&self, dead: &AtomicBool) {
        let _state = self.lock();
        dead.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// How many PUBLISH packets are in flight if `connection` is the latest one;
    /// otherwise a newer connection has them, and this one has none.
    pub fn unacknowledged(&self, connection: u64) -> usize {
        let state = self.lock();
        match state.connection == connection {
            true => state.inflight.len(),
            false => 0,
        }
    }
}

impl State {
    /// The next packet id (1 to 65535) that is not in flight. At most [`UNACKED`] are,
    /// far fewer than there are ids, so one is always free.
    fn next_pid(&mut self) -> u16 {
        loop {
            self.last_pid = self.last_pid.checked_add(1).unwrap_or(1);
            let pid = self.last_pid;
            if !self.inflight.iter().any(|e| e.pid == pid) {
                return pid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    fn encode(out: &mut Vec<u8>, payload: &[u8], pid: u16) {
        out.push(0x32);
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(payload);
    }

    fn register(session: &Session, connection: u64, dead: &AtomicBool, payload: &[u8]) -> bool {
        session.register(
            connection,
            [payload].into_iter(),
            dead,
            &mut Vec::new(),
            encode,
        )
    }

    #[test]
    fn acknowledged_lines_leave_and_the_rest_is_resent_marked() {
        let session = Session::default();
        let dead = AtomicBool::new(false);
        let (first, _, _) = session.begin();
        let mut out = Vec::new();
        let payloads = [&b"a"[..], b"b"];
        assert!(session.register(first, payloads.into_iter(), &dead, &mut out, encode));
        assert_eq!(out, [0x32, 0, 1, b'a', 0x32, 0, 2, b'b']);
        session.ack(2);
        session.ack(1);
        assert!(session.wait(0, &dead, None));
        assert!(register(&session, first, &dead, b"c"));
        session.kill(&dead);
        assert!(!session.wait(0, &dead, None));
        // A dead connection's lines wait for the next one while none has started...
        assert!(register(&session, first, &dead, b"d"));
        assert_eq!(session.unacknowledged(first), 2);
        let (second, resend, count) = session.begin();
        assert_eq!(count, 2);
        assert_eq!(resend, [0x3a, 0, 3, b'c', 0x3a, 0, 4, b'd']);
        // ...but not once one has: nobody would send them.
        assert!(!register(&session, first, &dead, b"e"));
        assert_eq!(session.unacknowledged(first), 0);
        assert_eq!(session.unacknowledged(second), 2);
    }

    #[test]
    fn a_waiter_wakes_when_few_enough_are_in_flight_or_at_its_deadline() {
        let session = Arc::new(Session::default());
        let dead = Arc::new(AtomicBool::new(false));
        assert!(register(&session, 0, &dead, b"x"));
        assert!(register(&session, 0, &dead, b"y"));
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert!(!session.wait(1, &dead, soon));
        let (s, d) = (Arc::clone(&session), Arc::clone(&dead));
        let waiter = thread::spawn(move || s.wait(1, &d, None));
        session.ack(1);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_wrap_past_zero() {
        let session = Session::default();
        let dead = AtomicBool::new(false);
        session.lock().last_pid = u16::MAX - 1;
        assert!(register(&session, 0, &dead, b"x"));
        // u16::MAX is in flight: the next id wraps to 1, never 0.
        session.lock().last_pid = u16::MAX - 1;
        assert_eq!(session.pid(), 1);
        assert!(Arc::ptr_eq(&of("b:1", "id"), &of("b:1", "id")));
        assert!(!Arc::ptr_eq(&of("b:1", "id"), &of("b:1", "other")));
    }
}
