//! A direction's lane: the direct route's rule in one place, and the direction's accounts.
//!
//! A thread wake-up costs tens of microseconds on a busy machine, and the queued route
//! (source -> dispatcher -> writer) has two of them per batch. So when nothing is
//! queued for the destination (the lane's outstanding byte count is zero: nothing in
//! the channel, held by the dispatcher, in a backlog or with the writer), the source
//! writes the batch itself through the destination's never-waiting way out
//! ([`Lane::route`]). When the destination is full, the source waits for room and goes
//! on writing, as a one-thread relay would: under a flood the queued route would
//! otherwise take every later batch, at two thread hops a chunk. Backpressure is the
//! same either way (the source stops reading), and it holds back only this direction.
//! The wait ends within [`WAIT_SLICE`] once the bridge stops ([`Lane::stop`]); then,
//! or if the way out cannot wait, what does not fit is counted as outstanding and
//! queued, so every later batch queues behind it and order is kept.
//!
//! The route lock is held from the decision until the rest is in the channel: with
//! several sources (clients) in one direction, the rest of a line cut by a full
//! destination is queued before any other source may write, so lines never mix. The
//! dispatcher never waits for that lock (a source may hold it while it waits for room in
//! the channel the dispatcher drains): it only tries it, for a silence flush, and swaps
//! the never-waiting way out through
//! [`Lane::set_direct`], which the next route applies.
//!
//! Counting protocol: bytes become outstanding when queued ([`Lane::route`],
//! [`Lane::queued`]) and stop being so when written ([`Lane::written`]) or lost
//! ([`Lane::lost`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::turn::{Check, Turn};
use crate::endpoint::{Direct as Out, Dropped};
use crate::framing::Batch;

/// The destination's never-waiting way out, or none.
type Direct = Option<Box<dyn Out>>;

/// What went one way through the bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Pieces written: lines, plus pieces of over-long or partial lines (raw: reads).
    pub pieces: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A source routing in turn: see [`Lane::route_in_turn`].
pub struct InTurn<'a> {
    /// Which source.
    pub source: u64,
    /// Its batch leaves its line unfinished (it ends in a piece without the delimiter).
    pub open: bool,
    /// The delimiter, to end a line whose holder lost the turn.
    pub end: &'a [u8],
}

/// One direction's direct route and accounts; shared by its sources, the dispatcher and
/// the destination's writer.
#[derive(Default)]
pub struct Lane {
    /// The never-waiting way out; held while a source routes a batch.
    route: Mutex<Direct>,
    /// A new way out asked for by the dispatcher, applied by the next route.
    swap: Mutex<Option<Direct>>,
    swapped: AtomicBool,
    /// Bytes read and queued for the destination but not yet written or lost.
    outstanding: AtomicU64,
    pieces: AtomicU64,
    bytes: AtomicU64,
    /// Pieces that will never be written: dropped from a full backlog, lost with a
    /// failed writer, or sent to a listener with no client.
    lost: AtomicU64,
    /// Bytes written on the direct route, without the dispatcher.
    direct: AtomicU64,
    /// Set when the bridge stops: no source waits for a full destination any more.
    stopping: AtomicBool,
    /// Bumped to end the waits under way now (not later ones): the sources are going.
    interrupts: AtomicU64,
    /// Never wait for a full destination (a hub's peer): what it cannot take now is
    /// queued, and its queue drops its oldest lines when full (see `direction.rs`).
    hasty: AtomicBool,
    /// Whose over-long line the destination is in the middle of.
    turn: Turn,
}

/// How long a source waits for room at a time before it looks whether the bridge is
/// stopping. Only a full destination is waited for, so an idle bridge never wakes.
const WAIT_SLICE: Duration = Duration::from_millis(100);

impl Lane {
    /// Routes `batch`: written now if nothing is queued and the destination takes it,
    /// the rest counted as outstanding. `queue` is then called with what is left (maybe
    /// nothing) while the route lock is still held, so it can hand that on in order.
    #[cfg(test)]
    pub fn route<R>(&self, batch: &mut Batch, queue: impl FnOnce(&mut Batch) -> R) -> R {
        self.route_in_turn(None, batch, queue)
    }

    /// [`Lane::route`] for a source that shares the destination: it waits while another
    /// source's over-long line is under way (see [`Turn`]), ends that line first if its
    /// holder lost the turn, and takes or gives up the turn itself, all with the route
    /// held, so no other source's batch comes in between.
    pub fn route_in_turn<R>(
        &self,
        turn: Option<InTurn<'_>>,
        batch: &mut Batch,
        queue: impl FnOnce(&mut Batch) -> R,
    ) -> R {
        let mut direct = loop {
            let direct = self.lock();
            let Some(t) = &turn else { break direct };
            match self.turn.check(t.source) {
                Check::Go => break direct,
                Check::Lapsed => {
                    let mut ended = Batch::with_capacity(t.end.len() + batch.bytes().len());
                    ended.push(t.end);
                    ended.append(std::mem::take(batch));
                    *batch = ended;
                    break direct;
                }
                Check::Wait(until) => {
                    drop(direct);
                    self.turn.wait_until(until);
                }
            }
        };
        if self.swapped.swap(false, Ordering::AcqRel)
            && let Some(new) = self.swap.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            *direct = new;
        }
        if !batch.is_empty()
            && self.outstanding.load(Ordering::Acquire) == 0
            && let Some(out) = direct.as_mut()
        {
            self.write_through(&mut **out, batch);
        }
        self.queued(batch.bytes().len());
        if let Some(t) = &turn {
            self.turn.handed(t.source, t.open);
        }
        queue(batch)
    }

    /// Writes `batch` on the direct route. When it is full, waits for room
    /// rather than handing the rest over (the dispatcher and the writer would cost two
    /// thread wake-ups per chunk), in slices, so a stop ends the wait within one; a way
    /// out that cannot wait, or a destination that failed, leaves the rest to the
    /// queued route, where the writer meets the error and reports it.
    fn write_through(&self, out: &mut dyn Out, batch: &mut Batch) {
        let interrupts = self.interrupts.load(Ordering::Acquire);
        let mut idle = 0;
        loop {
            let taken = out.try_send(batch);
            let pieces = batch.advance(taken.bytes);
            self.count(pieces, taken.bytes, taken.dropped);
            // What reached nobody did not go straight through either.
            let reached = taken.bytes.saturating_sub(taken.dropped.bytes);
            self.direct.fetch_add(reached as u64, Ordering::Relaxed);
            // Room reported but nothing taken, more than once: stop asking.
            idle = if taken.bytes == 0 { idle + 1 } else { 0 };
            if batch.is_empty()
                || idle > 2
                || self.hasty.load(Ordering::Relaxed)
                || self.stopping.load(Ordering::Acquire)
                || self.interrupts.load(Ordering::Acquire) != interrupts
            {
                return;
            }
            if out.wait_ready(WAIT_SLICE).is_err() {
                return;
            }
        }
    }

    /// From now on, sources never wait for the destination: one peer of a hub must not
    /// hold back the device, and so the others.
    pub fn never_wait(&self) {
        self.hasty.store(true, Ordering::Relaxed);
    }

    /// Ends any wait for a full destination, and every later one: the bridge is
    /// stopping, and what is left takes the queued route to be written out or counted.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.turn.stop();
    }

    /// Whose over-long line the destination is in the middle of.
    pub fn turn(&self) -> &Turn {
        &self.turn
    }

    /// Ends the waits for a full destination under way now, within [`WAIT_SLICE`];
    /// what is left takes the queued route. The sources of the direction are going
    /// (their endpoint went down), and what they read must not wait on the destination.
    pub fn interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::AcqRel);
    }

    /// Bytes queued outside [`Lane::route`]: a partial line the dispatcher took.
    pub fn queued(&self, bytes: usize) {
        if bytes > 0 {
            self.outstanding.fetch_add(bytes as u64, Ordering::Release);
        }
    }

    /// The writer wrote `bytes` bytes in `pieces` pieces, of which `dropped` reached
    /// nobody.
    pub fn written(&self, pieces: usize, bytes: usize, dropped: Dropped) {
        self.outstanding.fetch_sub(bytes as u64, Ordering::Release);
        self.count(pieces, bytes, dropped);
    }

    /// `pieces` pieces of `bytes` bytes will never be written.
    pub fn lost(&self, pieces: usize, bytes: usize) {
        self.outstanding.fetch_sub(bytes as u64, Ordering::Release);
        self.lost.fetch_add(pieces as u64, Ordering::Relaxed);
    }

    /// Pieces counted as written that reached nobody after all (see
    /// [`crate::endpoint::Outbox::retracted`]): counted as lost instead.
    pub fn retract(&self, late: Dropped) {
        if late.pieces == 0 && late.bytes == 0 {
            return;
        }
        let less = |n: usize| move |now: u64| Some(now.saturating_sub(n as u64));
        let _ = self
            .pieces
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(late.pieces));
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(late.bytes));
        self.lost.fetch_add(late.pieces as u64, Ordering::Relaxed);
    }

    /// `pieces` pieces were lost before a source could read them: never read, never
    /// outstanding, only counted.
    pub fn missed(&self, pieces: u64) {
        self.lost.fetch_add(pieces, Ordering::Relaxed);
    }

    /// Puts a new never-waiting way out in place (or none, while the destination is
    /// down or settling). Never waits: it takes effect now if no source is routing, or
    /// at the next route.
    pub fn set_direct(&self, direct: Direct) {
        match self.route.try_lock() {
            Ok(mut current) => {
                *current = direct;
                // An older swap waiting for the lock is out of date now.
                self.swap.lock().unwrap_or_else(|e| e.into_inner()).take();
                self.swapped.store(false, Ordering::Release);
            }
            Err(_) => {
                *self.swap.lock().unwrap_or_else(|e| e.into_inner()) = Some(direct);
                self.swapped.store(true, Ordering::Release);
            }
        }
    }

    /// Bytes read but not yet written or lost.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Acquire)
    }

    /// What has been written so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            pieces: self.pieces.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Pieces that will never be written.
    pub fn lost_pieces(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Bytes written on the direct route, without the dispatcher.
    pub fn direct_bytes(&self) -> u64 {
        self.direct.load(Ordering::Relaxed)
    }

    /// Counts what was put out: written, but for what reached nobody.
    fn count(&self, pieces: usize, bytes: usize, dropped: Dropped) {
        let pieces = pieces.saturating_sub(dropped.pieces);
        let bytes = bytes.saturating_sub(dropped.bytes);
        self.pieces.fetch_add(pieces as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.lost
            .fetch_add(dropped.pieces as u64, Ordering::Relaxed);
    }

    /// The route lock if no source holds it now: while the caller holds it, no source
    /// is writing on the direct route, and once bytes are counted as outstanding none
    /// will, so what the caller queues cannot land inside another source's line.
    pub fn try_route(&self) -> Option<MutexGuard<'_, Direct>> {
        match self.route.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The route lock. Nothing panics while holding it; if something did, the way out
    /// is still whole, so carry on with it.
    fn lock(&self) -> MutexGuard<'_, Direct> {
        self.route.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Taken;

    /// Takes at most `room` bytes per call.
    struct Room(usize);

    impl Out for Room {
        fn try_send(&mut self, batch: &Batch) -> Taken {
            let bytes = batch.bytes().len().min(self.0);
            self.0 -= bytes;
            Taken {
                bytes,
                dropped: Dropped::default(),
            }
        }
    }

    #[test]
    fn direct_when_clear_then_queue_behind_a_cut() {
        let lane = Lane::default();
        lane.set_direct(Some(Box::new(Room(6))));
        let mut first = Batch::of(&[b"abc\n", b"defg\n"]);
        let rest = lane.route(&mut first, |rest| rest.clone());
        assert_eq!(rest.bytes(), b"fg\n");
        assert_eq!(lane.outstanding(), 3);
        assert_eq!(
            lane.traffic(),
            Traffic {
                pieces: 1,
                bytes: 6
            }
        );
        // Something is queued: the next batch waits its turn even with room.
        lane.set_direct(Some(Box::new(Room(100))));
        let mut second = Batch::of(&[b"h\n"]);
        let rest = lane.route(&mut second, |rest| rest.clone());
        assert_eq!(rest.bytes(), b"h\n");
        assert_eq!(lane.outstanding(), 5);
        lane.written(2, 5, Dropped::default());
        assert_eq!(lane.outstanding(), 0);
        assert_eq!(
            lane.traffic(),
            Traffic {
                pieces: 3,
                bytes: 11
            }
        );
    }

    #[test]
    fn a_swap_asked_while_routing_applies_at_the_next_route() {
        let lane = Lane::default();
        let held = lane.lock();
        lane.set_direct(Some(Box::new(Room(100))));
        drop(held);
        let mut b = Batch::of(&[b"x\n"]);
        lane.route(&mut b, |rest| assert!(rest.is_empty()));
        assert_eq!(lane.outstanding(), 0);
    }

    /// Takes one byte at a time, and always has room for the next after a moment.
    struct Trickle;

    impl Out for Trickle {
        fn try_send(&mut self, batch: &Batch) -> Taken {
            Taken {
                bytes: batch.bytes().len().min(1),
                dropped: Dropped::default(),
            }
        }
        fn wait_ready(&mut self, _: Duration) -> std::io::Result<bool> {
            std::thread::sleep(Duration::from_millis(1));
            Ok(true)
        }
    }

    #[test]
    fn an_interrupt_ends_a_wait_under_way_and_the_rest_is_queued() {
        let lane = std::sync::Arc::new(Lane::default());
        lane.set_direct(Some(Box::new(Trickle)));
        let routing = std::sync::Arc::clone(&lane);
        let source = std::thread::spawn(move || {
            // Ten seconds' worth at a byte per millisecond.
            let mut b = Batch::of(&[&[b'x'; 10_000]]);
            routing.route(&mut b, |rest| rest.bytes().len())
        });
        while lane.direct_bytes() == 0 {
            std::thread::yield_now();
        }
        lane.interrupt();
        let rest = source.join().unwrap();
        assert!(rest > 0 && rest < 10_000, "{rest}");
        assert_eq!(lane.outstanding(), rest as u64);
        // Later routes wait again.
        lane.written(1, rest, Dropped::default());
        let mut b = Batch::of(&[b"ab"]);
        lane.route(&mut b, |rest| assert!(rest.is_empty()));
    }

    #[test]
    fn losses_are_counted_and_no_longer_outstanding() {
        let lane = Lane::default();
        let mut b = Batch::of(&[b"a\n", b"b\n"]);
        lane.route(&mut b, |_| ());
        assert_eq!(lane.outstanding(), 4);
        lane.lost(2, 4);
        assert_eq!((lane.outstanding(), lane.lost_pieces()), (0, 2));
    }
}
