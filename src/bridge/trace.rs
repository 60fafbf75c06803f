//! Per-line log formatting: each piece escaped (or as a hex dump) at debug level, the
//! framing in the start-up line, and the traffic lines of `--stats` and the summary.
//! Data bytes in logs are always escaped, never printed raw.

use log::{debug, log_enabled};

use super::lane::Traffic;
use crate::escape::escape;
use crate::framing::{Batch, Framing};
use crate::words::count;

/// How much of a piece a log line shows before `...`.
const PREVIEW: usize = 80;

/// Logs each piece of a batch at debug level: `A -> B 6 bytes "hello\n"`.
pub fn pieces(label: &str, batch: &Batch, hex: bool) {
    if !log_enabled!(log::Level::Debug) {
        return;
    }
    for piece in batch.iter() {
        if hex {
            let size = count(piece.len() as u64, "byte");
            debug!("{label} {size}\n{}", hex_dump(piece));
        } else {
            let size = count(piece.len() as u64, "byte");
            debug!("{label} {size} \"{}\"", preview(piece));
        }
    }
}

/// The framing, for the start-up line.
pub fn framing(framing: &Framing) -> String {
    match framing {
        Framing::Raw => "raw bytes".to_string(),
        Framing::Lines {
            delimiter,
            max_line,
        } => format!(
            "lines ending in \"{}\", at most {max_line} bytes",
            escape(delimiter)
        ),
    }
}

/// What a traffic line says besides lines and bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shown {
    /// Endpoints opened again, with `--reconnect` (then drops are always shown).
    pub reconnects: Option<u64>,
    /// Over-long lines forwarded in pieces.
    pub cuts: u64,
    /// Lines the bridge ended because their source stopped in the middle of them.
    pub short: u64,
    /// Show drops even when there are none (a hub's lines, one per peer).
    pub dropped: bool,
    /// The counts are of what was read, not written (a hub's peer into the device).
    pub read: bool,
}

/// What one direction carried: `A -> B: 12 lines, 345 bytes` and whatever else there is
/// to say.
pub fn traffic(
    label: &str,
    traffic: &Traffic,
    framing: &Framing,
    lost: u64,
    shown: Shown,
) -> String {
    let Shown {
        reconnects,
        cuts,
        short,
        dropped,
        read,
    } = shown;
    let Traffic { pieces, bytes } = traffic;
    let mut line = match framing {
        Framing::Raw => format!("{label}: {}", count(*bytes, "byte")),
        Framing::Lines { .. } => format!(
            "{label}: {}, {}",
            count(*pieces, "line"),
            count(*bytes, "byte")
        ),
    };
    if read {
        line += " read";
    }
    match reconnects {
        Some(reconnects) => {
            line += &format!(", {lost} dropped, {}", count(reconnects, "reconnect"));
        }
        None if lost > 0 || dropped => line += &format!(", {lost} dropped"),
        None => {}
    }
    if cuts > 0 {
        line += &format!(" ({} forwarded in pieces)", count(cuts, "over-long line"));
    }
    if short > 0 {
        let lines = count(short, "line");
        line += &format!(" ({lines} cut short by a source that stopped, ended by the bridge)");
    }
    line
}

/// A piece as an escaped string for the log, cut short if long.
fn preview(piece: &[u8]) -> String {
    let mut text = escape(&piece[..piece.len().min(PREVIEW)]);
    if piece.len() > PREVIEW {
        text += "...";
    }
    text
}

/// A piece as `hexdump -C` shows it: offset, 16 bytes in hex, then as ASCII.
fn hex_dump(piece: &[u8]) -> String {
    let mut out = String::new();
    for (row, bytes) in piece.chunks(16).enumerate() {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        if row > 0 {
            out.push('\n');
        }
        out += &format!("  {:08x}  {:<47}  |{ascii}|", row * 16, hex.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_rows() {
        let dump = hex_dump(b"hello\n\x00\xffABCDEFGHIJ");
        let rows: Vec<&str> = dump.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].starts_with("  00000000  68 65 6c 6c 6f 0a 00 ff 41"));
        assert!(rows[0].ends_with("|hello...ABCDEFGH|"));
        assert!(rows[1].ends_with("|IJ|"));
    }

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview(b"hi\r\n\x00\xff\""), "hi\\r\\n\\0\\xff\\\"");
        assert!(preview(&[b'a'; 200]).ends_with("..."));
    }

    #[test]
    fn traffic_lines() {
        let t = Traffic {
            pieces: 2,
            bytes: 9,
        };
        let lines = Framing::default();
        let shown = |reconnects, cuts| Shown {
            reconnects,
            cuts,
            ..Shown::default()
        };
        assert_eq!(
            traffic("A -> B", &t, &lines, 0, shown(None, 0)),
            "A -> B: 2 lines, 9 bytes"
        );
        let hub = Shown {
            dropped: true,
            ..Shown::default()
        };
        assert_eq!(
            traffic("A -> B", &t, &lines, 0, hub),
            "A -> B: 2 lines, 9 bytes, 0 dropped"
        );
        let peer = Shown { read: true, ..hub };
        assert_eq!(
            traffic("P -> D", &t, &lines, 1, peer),
            "P -> D: 2 lines, 9 bytes read, 1 dropped"
        );
        assert_eq!(
            traffic("A -> B", &t, &lines, 3, shown(Some(1), 2)),
            "A -> B: 2 lines, 9 bytes, 3 dropped, 1 reconnect (2 over-long lines forwarded in pieces)"
        );
        let one = Traffic {
            pieces: 1,
            bytes: 5,
        };
        assert_eq!(
            traffic("A -> B", &one, &lines, 0, shown(Some(2), 1)),
            "A -> B: 1 line, 5 bytes, 0 dropped, 2 reconnects (1 over-long line forwarded in pieces)"
        );
        assert_eq!(
            traffic("A -> B", &t, &Framing::Raw, 1, shown(None, 0)),
            "A -> B: 9 bytes, 1 dropped"
        );
    }
}
