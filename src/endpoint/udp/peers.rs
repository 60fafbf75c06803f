//! The peers of `udp-listen://`: who sent lately, so lines go back to them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{Level, debug, info, log};

use crate::endpoint::contract::{Dropped, Taken};
use crate::framing::Batch;
use crate::words::count;

/// The peers of `udp-listen://` heard from recently: at most `max`, each until it has
/// been silent for `timeout`.
#[derive(Debug)]
pub struct Peers {
    /// Oldest heard first.
    list: Vec<(SocketAddr, Instant)>,
    max: usize,
    timeout: Duration,
    /// Lines dropped since the last peer went, for the log.
    unheard: u64,
    /// Whether more peers were heard from than the list holds.
    crowded: bool,
}

impl Peers {
    /// No peer yet.
    pub fn new(max: usize, timeout: Duration) -> Peers {
        Peers {
            list: Vec::new(),
            max: max.max(1),
            timeout,
            unheard: 0,
            crowded: false,
        }
    }

    /// `peer` sent a datagram at `now`.
    pub fn heard(&mut self, name: &str, peer: SocketAddr, now: Instant) {
        if let Some(at) = self.list.iter().position(|(p, _)| *p == peer) {
            self.list.remove(at);
            self.list.push((peer, now));
            return;
        }
        self.current(name, now);
        if self.list.len() >= self.max {
            let (oldest, _) = self.list.remove(0);
            if !self.crowded {
                info!(
                    "{name}: more than {} peers: the one heard from least recently gets no \
                     more lines ({oldest} now, to make room for {peer}; --max-clients sets \
                     the number); peers coming and going are logged at debug level from now",
                    self.max
                );
            }
            self.crowded = true;
            debug!("{name}: no more lines to {oldest}, to make room for {peer}");
        }
        self.list.push((peer, now));
        let dropped = std::mem::take(&mut self.unheard);
        let meanwhile = match dropped {
            0 => String::new(),
            n => format!(
                "; {} dropped while no peer was heard from",
                count(n, "line")
            ),
        };
        log!(
            self.level(),
            "{name}: heard from {peer}; lines go to it{meanwhile}"
        );
    }

    /// Peers come and go at info level, until there are more than the list holds.
    fn level(&self) -> Level {
        match self.crowded {
            true => Level::Debug,
            false => Level::Info,
        }
    }

    /// The peers heard from within the timeout; forgets the others.
    pub fn current(&mut self, name: &str, now: Instant) -> Vec<SocketAddr> {
        let (timeout, level) = (self.timeout, self.level());
        self.list.retain(|(peer, at)| {
            let alive = now.saturating_duration_since(*at) < timeout;
            if !alive {
                log!(
                    level,
                    "{name}: no more lines to {peer}, silent for {}s",
                    timeout.as_secs()
                );
            }
            alive
        });
        self.list.iter().map(|(peer, _)| *peer).collect()
    }

    /// Counts a batch sent when no peer was heard from; logs the first of a run.
    pub fn unheard(&mut self, name: &str, batch: &Batch) -> Taken {
        if self.unheard == 0 {
            info!(
                "{name}: no peer heard from in the last {}s; dropping lines until one sends",
                self.timeout.as_secs()
            );
        }
        self.unheard += batch.pieces() as u64;
        Taken {
            bytes: batch.bytes().len(),
            dropped: Dropped::all(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_bounded_and_forgotten_when_silent() {
        let mut peers = Peers::new(2, Duration::from_secs(5));
        let t = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        peers.heard("x", a, t);
        peers.heard("x", b, t);
        peers.heard("x", a, t + Duration::from_secs(1));
        peers.heard("x", c, t + Duration::from_secs(2));
        assert_eq!(peers.current("x", t + Duration::from_secs(2)), [a, c]);
        assert!(peers.crowded, "more peers than the list holds");
        assert_eq!(peers.current("x", t + Duration::from_secs(6)), [c]);
        assert!(peers.current("x", t + Duration::from_secs(7)).is_empty());
    }
}
