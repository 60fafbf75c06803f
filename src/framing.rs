//! Line framing: turns the bytes of successive reads into whole pieces. No I/O.
//!
//! A [`Framer`] is fed each read as it arrives and appends every piece it completes
//! to a [`Batch`]. It never alters a byte: the concatenation of all pieces it emits,
//! followed by whatever it still holds, is exactly the input.
//!
//! The policy:
//!
//! - **Lines.** A line ends right after its delimiter, which stays part of it. The
//!   delimiter may be several bytes (`\r\n`) and may arrive split across reads. CR and LF
//!   get no special treatment: with the default `\n` delimiter a `\r\n` line keeps its
//!   `\r`, and a lone `\r` is an ordinary byte. An empty line is just its delimiter.
//! - **Over-long lines.** A line is at most `max_line` bytes plus its delimiter. When
//!   `max_line + delimiter length` bytes have arrived with no delimiter among them, the
//!   first `max_line` bytes are emitted as an unterminated piece and framing goes on
//!   with the rest. Nothing is lost, and the framer never holds more than
//!   `max_line + delimiter length - 1` bytes, whatever arrives.
//! - **Partial lines.** Bytes after the last delimiter stay in the framer until their
//!   line completes or its owner takes them with [`Framer::take_partial`] (at shutdown,
//!   after a silence, or when the source closes); the framer never drops them.
//! - **Raw.** In raw mode every non-empty read is one piece, unchanged.

use memchr::memmem;

/// How the byte stream of one direction is cut into pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Forward whole lines ending in `delimiter`, at most `max_line` bytes plus the
    /// delimiter each.
    Lines {
        /// The line delimiter, at least one byte.
        delimiter: Vec<u8>,
        /// The longest line, without its delimiter, forwarded in one piece.
        max_line: usize,
    },
    /// Forward every read as it arrives.
    Raw,
}

/// The default delimiter: a line feed, as Arduino's `Serial.println` sends after `\r`.
pub const DEFAULT_DELIMITER: &[u8] = b"\n";

/// The default longest line: long enough for any sensor or debug line we know of,
/// small enough that a device streaming without newlines costs only a few KiB.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// The largest `max_line` the command line takes: 64 MiB. A framer holds up to this much
/// per source, so a bound keeps a typo from asking for all of memory.
pub const MAX_MAX_LINE: usize = 64 << 20;

impl Default for Framing {
    fn default() -> Self {
        Framing::Lines {
            delimiter: DEFAULT_DELIMITER.to_vec(),
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// Pieces in one buffer: their bytes back to back, and where each one ends.
///
/// One message on a channel carries one batch, so a read that completes many lines
/// costs one channel hop, not one per line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// Appends one piece. An empty piece is ignored.
    pub fn push(&mut self, piece: &[u8]) {
        if !piece.is_empty() {
            self.data.extend_from_slice(piece);
            self.ends.push(self.data.len());
        }
    }

    /// Each piece as `f` writes it (it appends to the buffer it is given), one piece of
    /// the result each (an empty one is left out, as by [`Batch::push`]): a batch as it
    /// goes on a wire, where what a socket does not take still counts the pieces not
    /// all out. `extra`: room to reserve beyond this batch's bytes.
    pub fn map(&self, extra: usize, mut f: impl FnMut(&[u8], &mut Vec<u8>)) -> Batch {
        let mut out = Batch::with_capacity(self.data.len() + extra);
        for piece in self.iter() {
            f(piece, &mut out.data);
            if out.data.len() > out.ends.last().copied().unwrap_or(0) {
                out.ends.push(out.data.len());
            }
        }
        out
    }

    /// Appends every piece of `other`, in order.
    pub fn append(&mut self, other: Batch) {
        if self.data.is_empty() {
            *self = other;
            return;
        }
        let base = self.data.len();
        self.data.extend_from_slice(&other.data);
        self.ends.extend(other.ends.iter().map(|end| base + end));
    }

    /// Drops the first `n` bytes (already written elsewhere); returns how many pieces
    /// they completed. A piece cut by `n` keeps its rest.
    pub fn advance(&mut self, n: usize) -> usize {
        let n = n.min(self.data.len());
        let done = self.ends.partition_point(|&end| end <= n);
        self.data.drain(..n);
        self.ends.drain(..done);
        self.ends.iter_mut().for_each(|end| *end -= n);
        done
    }

    /// Drops `count` pieces after the first (which may finish a line already begun
    /// elsewhere); returns the bytes dropped.
    pub fn drop_after_first(&mut self, count: usize) -> usize {
        let count = count.min(self.ends.len().saturating_sub(1));
        if count == 0 {
            return 0;
        }
        let (start, end) = (self.ends[0], self.ends[count]);
        self.data.drain(start..end);
        self.ends.drain(1..=count);
        self.ends[1..].iter_mut().for_each(|e| *e -= end - start);
        end - start
    }

    /// The last piece, if any.
    pub fn last(&self) -> Option<&[u8]> {
        let end = *self.ends.last()?;
        let start = self.ends.len().checked_sub(2).map_or(0, |i| self.ends[i]);
        Some(&self.data[start..end])
    }

    /// All bytes of all pieces, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// How many pieces the batch holds.
    pub fn pieces(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no piece.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each piece in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.data[start..end])
    }
}

/// Cuts one direction's byte stream into pieces; see the module documentation.
#[derive(Debug)]
pub struct Framer {
    mode: Mode,
    /// Bytes of the current, unfinished line.
    pending: Vec<u8>,
    /// How many over-long lines were cut so far.
    cuts: u64,
    /// The line under way was cut already: its next cut is not a new over-long line.
    cutting: bool,
}

#[derive(Debug)]
enum Mode {
    Raw,
    Lines {
        delimiter: Vec<u8>,
        finder: Box<memmem::Finder<'static>>,
        max_line: usize,
    },
}

impl Framer {
    /// A framer for `framing`. A `Lines` framing must have a non-empty delimiter and
    /// a `max_line` of at least 1; cli.rs checks both.
    pub fn new(framing: &Framing) -> Framer {
        let mode = match framing {
            Framing::Raw => Mode::Raw,
            Framing::Lines {
                delimiter,
                max_line,
            } => {
                assert!(!delimiter.is_empty(), "delimiter is not empty");
                assert!(*max_line > 0, "max_line is at least 1");
                Mode::Lines {
                    finder: Box::new(memmem::Finder::new(delimiter).into_owned()),
                    delimiter: delimiter.clone(),
                    max_line: *max_line,
                }
            }
        };
        Framer {
            mode,
            pending: Vec::new(),
            cuts: 0,
            cutting: false,
        }
    }

    /// Feeds the bytes of one read, appending every piece they complete to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Batch) {
        let (delim_len, finder, max_line) = match &self.mode {
            Mode::Raw => {
                out.push(data);
                return;
            }
            Mode::Lines {
                delimiter,
                finder,
                max_line,
            } => (delimiter.len(), finder, *max_line),
        };
        // A delimiter that ends within `window` bytes of a line's start ends that line;
        // `window` bytes without one mean the line is over-long.
        let window = max_line.saturating_add(delim_len);
        while !data.is_empty() {
            if self.pending.is_empty() {
                // Fast path: search the read itself, copying only what is left over.
                let view = &data[..data.len().min(window)];
                if let Some(start) = finder.find(view) {
                    let end = start + delim_len;
                    out.push(&data[..end]);
                    self.cutting = false;
                    data = &data[end..];
                } else if view.len() == window {
                    out.push(&data[..max_line]);
                    self.cuts += u64::from(!self.cutting);
                    self.cutting = true;
                    data = &data[max_line..];
                } else {
                    self.pending.extend_from_slice(data);
                    return;
                }
            } else {
                let held = self.pending.len();
                let taken = data.len().min(window - held);
                self.pending.extend_from_slice(&data[..taken]);
                // What was held has no whole delimiter; one may end in the new bytes.
                let from = held.saturating_sub(delim_len - 1);
                if let Some(start) = finder.find(&self.pending[from..]) {
                    let end = from + start + delim_len;
                    out.push(&self.pending[..end]);
                    self.cutting = false;
                    data = &data[end - held..];
                    self.pending.clear();
                } else if self.pending.len() == window {
                    out.push(&self.pending[..max_line]);
                    self.cuts += u64::from(!self.cutting);
                    self.cutting = true;
                    if held > max_line {
                        // Keep the held bytes past the cut; the new ones are framed again.
                        self.pending.truncate(held);
                        self.pending.drain(..max_line);
                    } else {
                        data = &data[max_line - held..];
                        self.pending.clear();
                    }
                } else {
                    // Everything fitted in the window without ending the line.
                    return;
                }
            }
        }
    }

    /// Appends the unfinished line, if any, to `out` as one piece, and forgets it.
    pub fn take_partial(&mut self, out: &mut Batch) {
        out.push(&self.pending);
        self.pending.clear();
        self.cutting = false;
    }

    /// How many bytes of an unfinished line the framer holds.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many over-long lines were cut into pieces so far.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }
}

#[cfg(test)]
impl Batch {
    /// A batch of `pieces`, for the tests here and elsewhere.
    pub fn of(pieces: &[&[u8]]) -> Batch {
        let mut batch = Batch::default();
        pieces.iter().for_each(|piece| batch.push(piece));
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(delimiter: &[u8], max_line: usize) -> Framer {
        Framer::new(&Framing::Lines {
            delimiter: delimiter.to_vec(),
            max_line,
        })
    }

    /// Feeds `reads` one by one; returns the pieces and what is left pending.
    fn run(framer: &mut Framer, reads: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut out = Batch::default();
        for read in reads {
            framer.feed(read, &mut out);
        }
        let pieces = out.iter().map(<[u8]>::to_vec).collect();
        let mut rest = Batch::default();
        framer.take_partial(&mut rest);
        (pieces, rest.bytes().to_vec())
    }

    fn v(s: &[u8]) -> Vec<u8> {
        s.to_vec()
    }

    #[test]
    fn a_mapped_batch_has_a_piece_for_each_piece_written() {
        let batch = Batch::of(&[b"a\xff", b"skip", b"\xffb"]);
        let mapped = batch.map(0, |piece, out| {
            if piece != b"skip" {
                out.extend(piece.iter().flat_map(|&b| [b, b]));
            }
        });
        assert_eq!(mapped, Batch::of(&[b"aa\xff\xff", b"\xff\xffbb"]));
        let mut cut = mapped;
        assert_eq!(cut.advance(2), 0);
        assert_eq!(cut.pieces(), 2, "a piece cut keeps counting");
    }

    #[test]
    fn dropping_pieces_keeps_the_first_and_the_rest_in_order() {
        let mut batch = Batch::default();
        for piece in [&b"rest\n"[..], b"a\n", b"bb\n", b"ccc\n"] {
            batch.push(piece);
        }
        assert_eq!(batch.last(), Some(&b"ccc\n"[..]));
        assert_eq!(batch.drop_after_first(2), 5);
        let pieces: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(pieces, [&b"rest\n"[..], b"ccc\n"]);
        assert_eq!(batch.drop_after_first(9), 4);
        assert_eq!(batch.bytes(), b"rest\n");
        assert_eq!(batch.drop_after_first(1), 0);
        assert_eq!(batch.last(), Some(&b"rest\n"[..]));
        assert_eq!(Batch::default().drop_after_first(1), 0);
        assert_eq!(Batch::default().last(), None);
    }

    #[test]
    fn whole_lines_in_one_read() {
        let (p, rest) = run(&mut lines(b"\n", 100), &[b"a\nbc\n\nd"]);
        assert_eq!(p, [v(b"a\n"), v(b"bc\n"), v(b"\n")]);
        assert_eq!(rest, b"d");
    }

    #[test]
    fn line_split_across_reads() {
        let (p, rest) = run(&mut lines(b"\n", 100), &[b"he", b"ll", b"o\nwo", b"rld\n"]);
        assert_eq!(p, [v(b"hello\n"), v(b"world\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn one_byte_per_read() {
        let input = b"one\ntwo\n";
        let reads: Vec<&[u8]> = input.chunks(1).collect();
        let (p, _) = run(&mut lines(b"\n", 100), &reads);
        assert_eq!(p, [v(b"one\n"), v(b"two\n")]);
    }

    #[test]
    fn empty_lines() {
        let (p, rest) = run(&mut lines(b"\n", 4), &[b"\n\n", b"\n"]);
        assert_eq!(p, [v(b"\n"), v(b"\n"), v(b"\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn crlf_kept_with_lf_delimiter() {
        let (p, rest) = run(&mut lines(b"\n", 100), &[b"a\r\nb\rc\n"]);
        assert_eq!(p, [v(b"a\r\n"), v(b"b\rc\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn multi_byte_delimiter_split_across_reads() {
        let (p, rest) = run(
            &mut lines(b"\r\n", 100),
            &[b"ab\r", b"\ncd\r\n\r", b"x\r\n"],
        );
        assert_eq!(p, [v(b"ab\r\n"), v(b"cd\r\n"), v(b"\rx\r\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn self_overlapping_delimiter() {
        let (p, rest) = run(&mut lines(b"\n\n", 100), &[b"a\n", b"\n\nb\n\n"]);
        assert_eq!(p, [v(b"a\n\n"), v(b"\nb\n\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn every_byte_value_passes() {
        let line: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').chain([b'\n']).collect();
        let (p, rest) = run(&mut lines(b"\n", 4096), &[&line[..100], &line[100..]]);
        assert_eq!(p, [line]);
        assert!(rest.is_empty());
    }

    #[test]
    fn exactly_max_line_stays_whole() {
        let (p, rest) = run(&mut lines(b"\n", 4), &[b"abcd\n"]);
        assert_eq!(p, [v(b"abcd\n")]);
        assert!(rest.is_empty());
        let (p, _) = run(&mut lines(b"\n", 4), &[b"ab", b"cd", b"\n"]);
        assert_eq!(p, [v(b"abcd\n")]);
    }

    #[test]
    fn exactly_max_line_with_multi_byte_delimiter() {
        let (p, rest) = run(&mut lines(b"\r\n", 4), &[b"abcd\r", b"\n"]);
        assert_eq!(p, [v(b"abcd\r\n")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn max_line_plus_one_is_cut() {
        let mut f = lines(b"\n", 4);
        let (p, rest) = run(&mut f, &[b"abcde\n"]);
        assert_eq!(p, [v(b"abcd"), v(b"e\n")]);
        assert!(rest.is_empty());
        assert_eq!(f.cuts(), 1);
        let (p, _) = run(&mut lines(b"\n", 4), &[b"abcd", b"e", b"\n"]);
        assert_eq!(p, [v(b"abcd"), v(b"e\n")]);
    }

    #[test]
    fn cut_keeps_a_delimiter_that_straddles_the_cut() {
        // "abcd" fills max_line, "e\r" follows; "\r\n" must stay together.
        let (p, rest) = run(&mut lines(b"\r\n", 4), &[b"abcde\r", b"\n"]);
        assert_eq!(p, [v(b"abcd"), v(b"e\r\n")]);
        assert!(rest.is_empty());
        let (p, _) = run(&mut lines(b"\r\n", 4), &[b"abcde", b"\r", b"\n"]);
        assert_eq!(p, [v(b"abcd"), v(b"e\r\n")]);
    }

    #[test]
    fn long_run_without_delimiter_comes_out_in_max_line_pieces() {
        let data = vec![b'x'; 1 << 20];
        let mut f = lines(b"\n", 4096);
        let reads: Vec<&[u8]> = data.chunks(1000).collect();
        let (p, rest) = run(&mut f, &reads);
        // Each piece is cut once the next byte shows no delimiter follows, so the
        // last full-length run is still held.
        assert_eq!(p.len(), 255);
        assert!(p.iter().all(|piece| piece.len() == 4096));
        assert_eq!(rest.len(), 4096);
        assert!(f.pending() <= 4096);
    }

    #[test]
    fn holds_at_most_max_line_plus_delimiter_minus_one() {
        let mut f = lines(b"\r\n", 8);
        let mut out = Batch::default();
        for _ in 0..100 {
            f.feed(b"abc\r", &mut out);
            assert!(f.pending() <= 9);
        }
    }

    #[test]
    fn output_concatenates_to_input_for_many_splits() {
        let input: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 % 7)
            .map(|b| [b'\r', b'\n', b'a', b'b', 0, 0xff, b'\n'][b as usize])
            .collect();
        for delimiter in [&b"\n"[..], b"\r\n", b"\n\n", b"ab\n"] {
            for max_line in [1, 2, 3, 5, 64] {
                for step in [1, 2, 3, 7, 100, 5000] {
                    let mut f = lines(delimiter, max_line);
                    let reads: Vec<&[u8]> = input.chunks(step).collect();
                    let (pieces, rest) = run(&mut f, &reads);
                    let joined: Vec<u8> = pieces.concat().into_iter().chain(rest).collect();
                    assert_eq!(joined, input, "{delimiter:?} {max_line} {step}");
                    for piece in &pieces {
                        let body =
                            piece.len() - usize::from(piece.ends_with(delimiter)) * delimiter.len();
                        assert!(body <= max_line, "{piece:?} {delimiter:?} {max_line}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// For any input, any delimiter, any max-line and any split into reads: the
        /// pieces and what is left concatenate to the input, every piece is at most
        /// max-line plus its delimiter, the framer holds at most max-line plus the
        /// delimiter less one byte, and nothing panics.
        #[test]
        fn any_input_any_split(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::sample::select(vec![b'\n', b'\r', b'a', 0u8, 0xff]),
                    1 => proptest::arbitrary::any::<u8>(),
                ],
                0..2000,
            ),
            cuts in proptest::collection::vec(0usize..2000, 0..40),
            delimiter in proptest::prop_oneof![
                proptest::strategy::Just(b"\n".to_vec()),
                proptest::strategy::Just(b"\r\n".to_vec()),
                proptest::strategy::Just(b"\n\n".to_vec()),
                proptest::collection::vec(proptest::sample::select(vec![b'\n', b'\r', b'a']), 1..4),
            ],
            max_line in 1usize..80,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.sort_unstable();
            let mut framer = lines(&delimiter, max_line);
            let mut out = Batch::default();
            let mut start = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                framer.feed(&input[start..cut], &mut out);
                start = cut;
                proptest::prop_assert!(framer.pending() < max_line + delimiter.len());
            }
            for piece in out.iter() {
                let body = match piece.ends_with(&delimiter) {
                    true => piece.len() - delimiter.len(),
                    false => piece.len(),
                };
                proptest::prop_assert!(body <= max_line);
                proptest::prop_assert!(!piece.is_empty());
            }
            let mut joined = out.bytes().to_vec();
            let mut rest = Batch::default();
            framer.take_partial(&mut rest);
            joined.extend_from_slice(rest.bytes());
            proptest::prop_assert_eq!(joined, input);
        }
    }

    #[test]
    fn raw_passes_each_read() {
        let mut f = Framer::new(&Framing::Raw);
        let (p, rest) = run(&mut f, &[b"a\nb", b"", b"\x00\xff"]);
        assert_eq!(p, [v(b"a\nb"), v(b"\x00\xff")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn batch_advance_counts_finished_pieces() {
        let mut b = Batch::default();
        b.push(b"ab\n");
        b.push(b"cd\n");
        assert_eq!(b.advance(4), 1);
        assert_eq!(b.iter().collect::<Vec<_>>(), [&b"d\n"[..]]);
        assert_eq!(b.advance(2), 1);
        assert!(b.is_empty() && b.bytes().is_empty());
    }

    #[test]
    fn batch_append_keeps_piece_boundaries() {
        let mut a = Batch::default();
        a.push(b"x\n");
        let mut b = Batch::default();
        b.push(b"y\n");
        b.push(b"z");
        a.append(b);
        let pieces: Vec<&[u8]> = a.iter().collect();
        assert_eq!(pieces, [&b"x\n"[..], b"y\n", b"z"]);
        assert_eq!(a.pieces(), 3);
    }
}
