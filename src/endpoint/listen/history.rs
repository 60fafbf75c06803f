//! [`History`]: the last lines sent to a listener's clients, kept for a client that
//! comes later and asks for them (the console page).

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::framing::Batch;

/// The most bytes a listener's history keeps, whatever `history=` says.
pub const HISTORY_BYTES: usize = 1 << 20;

/// The last lines sent to a listener's clients, or sent while it had none, with when
/// each was sent: given to a client that asks for them as it connects (the console page
/// shows them as earlier lines). At most `lines` lines and [`HISTORY_BYTES`]. A line may
/// be in several pieces (longer than `--max-line`, or a prompt sent by
/// `--flush-after`): lines are counted, not pieces, and what is given starts at the
/// start of a line.
#[derive(Debug, Default)]
pub struct History {
    /// The most lines kept; 0 keeps none.
    pub lines: usize,
    /// What ends a line: `None` when every piece is one (`--raw`).
    delimiter: Option<Vec<u8>>,
    /// Batches as sent, oldest first, with when (ms since the Unix epoch) and how many
    /// lines each ends; a few more lines than are given, trimmed when given.
    kept: VecDeque<(u64, Batch, usize)>,
    /// Lines the kept batches end, and their bytes.
    ended: usize,
    bytes: usize,
    /// Whether the oldest kept piece starts a line (the piece before it ended one).
    clean_start: bool,
}

/// What a client is given of the history: whole lines, oldest first, and when each
/// was sent (ms since the Unix epoch); a line whose end was not sent yet last, in
/// pieces, its time not among `times` (the rest of it comes with the live lines).
#[derive(Debug, Default)]
pub struct Earlier {
    /// When each line was sent, in ms since the Unix epoch.
    pub times: Vec<u64>,
    /// The lines' pieces, oldest first.
    pub pieces: Batch,
}

impl History {
    /// A history of the last `lines` lines, which end with `delimiter`, or of pieces
    /// (`None`: each one is a message).
    pub fn new(lines: usize, delimiter: Option<&[u8]>) -> History {
        History {
            lines,
            delimiter: delimiter.map(<[u8]>::to_vec),
            clean_start: true,
            ..History::default()
        }
    }

    /// Whether `piece` ends a line.
    fn ends(&self, piece: &[u8]) -> bool {
        self.delimiter
            .as_deref()
            .is_none_or(|delimiter| piece.ends_with(delimiter))
    }

    /// Keeps `batch`, and forgets what is beyond the bounds.
    pub fn keep(&mut self, batch: &Batch) {
        if self.lines == 0 || batch.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ended = batch.iter().filter(|piece| self.ends(piece)).count();
        self.ended += ended;
        self.bytes += batch.bytes().len();
        self.kept.push_back((now, batch.clone(), ended));
        while let Some((_, oldest, ended)) = self.kept.front() {
            let enough = self.ended - ended >= self.lines;
            let large = self.bytes > HISTORY_BYTES && self.kept.len() > 1;
            if !enough && !large {
                break;
            }
            self.clean_start = oldest.last().is_some_and(|last| self.ends(last));
            self.ended -= ended;
            self.bytes -= oldest.bytes().len();
            self.kept.pop_front();
        }
    }

    /// The last `lines` lines, at most [`HISTORY_BYTES`] of them, from the start of a
    /// line.
    pub fn earlier(&self) -> Earlier {
        // Newest first: each piece, when it was sent, and whether it ends a line.
        let mut last: Vec<(u64, &[u8], bool)> = Vec::new();
        let (mut bytes, mut ended) = (0, 0);
        // Whether the oldest piece taken starts a line.
        let mut clean = self.clean_start;
        'newest: for (time, batch, _) in self.kept.iter().rev() {
            let pieces: Vec<&[u8]> = batch.iter().collect();
            for piece in pieces.into_iter().rev() {
                let ends = self.ends(piece);
                if (ends && ended == self.lines) || bytes + piece.len() > HISTORY_BYTES {
                    // The piece before the oldest taken ends a line, or was left out.
                    clean = ends;
                    break 'newest;
                }
                bytes += piece.len();
                ended += usize::from(ends);
                last.push((*time, piece, ends));
            }
        }
        if !clean {
            // The oldest line taken began before what was taken: leave it out whole.
            while let Some((_, piece, ends)) = last.pop() {
                bytes -= piece.len();
                if ends {
                    break;
                }
            }
        }
        let mut earlier = Earlier {
            times: Vec::with_capacity(last.len()),
            pieces: Batch::with_capacity(bytes),
        };
        for (time, piece, ends) in last.into_iter().rev() {
            if ends {
                earlier.times.push(time);
            }
            earlier.pieces.push(piece);
        }
        earlier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(history: &History) -> Vec<Vec<u8>> {
        let earlier = history.earlier();
        let ended = earlier.pieces.iter().filter(|p| history.ends(p)).count();
        assert_eq!(earlier.times.len(), ended);
        earlier.pieces.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn lines_in_pieces_count_once_and_are_given_from_their_start() {
        let mut history = History::new(2, Some(b"\n"));
        history.keep(&Batch::of(&[b"0123", b"4567", b"89\n", b"ab", b"cd\n"]));
        history.keep(&Batch::of(&[b"prompt> "]));
        assert_eq!(
            given(&history),
            [&b"0123"[..], b"4567", b"89\n", b"ab", b"cd\n", b"prompt> "]
        );
        assert_eq!(history.earlier().times.len(), 2);
        // One more line: the first goes, whole.
        history.keep(&Batch::of(&[b"done\n"]));
        assert_eq!(
            given(&history),
            [&b"ab"[..], b"cd\n", b"prompt> ", b"done\n"]
        );
        // The batch holding the rest of a line is forgotten: what is kept starts
        // mid-line, and that line is not given.
        let mut history = History::new(1, Some(b"\n"));
        history.keep(&Batch::of(&[b"one\n", b"tw"]));
        history.keep(&Batch::of(&[b"o\n"]));
        history.keep(&Batch::of(&[b"three\n"]));
        assert_eq!(given(&history), [&b"three\n"[..]]);
        let mut history = History::new(5, Some(b"\n"));
        history.keep(&Batch::of(&[b"one\n", b"tw"]));
        history.keep(&Batch::of(&[b"o\n"]));
        assert_eq!(given(&history), [&b"one\n"[..], b"tw", b"o\n"]);
        history.kept.pop_front();
        history.clean_start = false;
        assert!(given(&history).is_empty());
    }

    #[test]
    fn raw_pieces_are_each_a_message() {
        let mut history = History::new(2, None);
        history.keep(&Batch::of(&[b"\xc0\x01", b"\x02"]));
        history.keep(&Batch::of(&[b"\x03"]));
        assert_eq!(given(&history), [&b"\x02"[..], b"\x03"]);
    }

    #[test]
    fn the_last_lines_are_given_oldest_first_across_batches() {
        let mut history = History::new(3, Some(b"\n"));
        history.keep(&Batch::of(&[b"1\n", b"2\n"]));
        history.keep(&Batch::of(&[b"3\n", b"4\xff\n"]));
        history.keep(&Batch::of(&[b"5\n"]));
        assert_eq!(given(&history), [&b"3\n"[..], b"4\xff\n", b"5\n"]);
        // The first batch is forgotten: the two after it hold enough.
        assert_eq!(history.kept.len(), 2);
        history.keep(&Batch::of(&[b"6\n", b"7\n", b"8\n", b"9\n"]));
        assert_eq!(given(&history), [&b"7\n"[..], b"8\n", b"9\n"]);
        assert_eq!(history.kept.len(), 1);
    }

    #[test]
    fn none_kept_with_history_0() {
        let mut history = History::new(0, Some(b"\n"));
        history.keep(&Batch::of(&[b"1\n"]));
        assert!(given(&history).is_empty());
        assert!(history.kept.is_empty());
    }

    #[test]
    fn at_most_history_bytes_are_kept_and_given() {
        let mut history = History::new(100_000, Some(b"\n"));
        let mut line = vec![b'x'; 999];
        line.push(b'\n');
        for _ in 0..3000 {
            history.keep(&Batch::of(&[&line]));
        }
        let bytes: usize = given(&history).iter().map(Vec::len).sum();
        assert_eq!(bytes, HISTORY_BYTES / 1000 * 1000);
        assert!(history.bytes <= HISTORY_BYTES + 1000, "{}", history.bytes);
        // One piece larger than the whole history is kept (it is the last batch) but not
        // given: a page gets no more than the bound.
        history.keep(&Batch::of(&[
            &[vec![b'y'; HISTORY_BYTES], b"\n".to_vec()].concat()
        ]));
        assert!(given(&history).is_empty());
        assert_eq!(history.kept.len(), 1);
    }
}
