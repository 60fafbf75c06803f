//! [`Backlog`]: lines kept for an endpoint that is down or settling (`--queue`).

use std::collections::VecDeque;

use super::lane::Lane;
use crate::framing::Batch;

/// Pieces bound for a down or settling endpoint, oldest first.
#[derive(Default)]
pub struct Backlog {
    pieces: VecDeque<Vec<u8>>,
    /// Dropped during this outage; logged once when it starts, once at the end.
    dropped: u64,
}

impl Backlog {
    /// Adds the pieces of `batch`, dropping the oldest beyond `limit` (counted as lost
    /// in `lane`). Returns true when this is the first drop of the outage.
    pub fn push(&mut self, batch: Batch, limit: usize, lane: &Lane) -> bool {
        let before = self.dropped;
        for piece in batch.iter() {
            self.pieces.push_back(piece.to_vec());
            while self.pieces.len() > limit {
                let oldest = self.pieces.pop_front().expect("over the limit");
                lane.lost(1, oldest.len());
                self.dropped += 1;
            }
        }
        before == 0 && self.dropped > 0
    }

    /// Pieces dropped during this outage.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Pieces still waiting.
    pub fn waiting(&self) -> usize {
        self.pieces.len()
    }

    /// Everything still waiting, as one batch.
    pub fn into_batch(self) -> Batch {
        let mut batch = Batch::default();
        self.pieces.iter().for_each(|piece| batch.push(piece));
        batch
    }
}
