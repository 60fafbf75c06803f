//! Escaping bytes for people, and back: `--delimiter '\r\n'` becomes bytes, and data
//! bytes in logs become printable text (grep-cli's escape.rs does the same job).
//!
//! The two are inverses: [`unescape`]`(`[`escape`]`(bytes))` gives the bytes back for
//! any input, so a line copied from a log can be typed as a delimiter.

/// Turns `\r\n`, `\0`, `\x1b` and friends into bytes. The error says how to fix it.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'"') => b'"',
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let digits: Option<Vec<u8>> = hex.into_iter().collect();
                digits
                    .and_then(|d| u8::from_str_radix(std::str::from_utf8(&d).ok()?, 16).ok())
                    .ok_or("\\x needs two hex digits, e.g. \\x03")?
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape '\\{}'; use \\n \\r \\t \\0 \\\\ or \\xNN",
                    other as char
                ));
            }
            None => return Err("ends with a lone '\\'; write \\\\ for a backslash".into()),
        });
    }
    Ok(out)
}

/// The inverse of [`unescape`], for logs: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out += "\\n",
            b'\r' => out += "\\r",
            b'\t' => out += "\\t",
            0 => out += "\\0",
            b'\\' => out += "\\\\",
            b'"' => out += "\\\"",
            b' '..=b'~' => out.push(b as char),
            _ => out += &format!("\\x{b:02x}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        assert_eq!(unescape("\\r\\n").unwrap(), b"\r\n");
        assert_eq!(unescape("\\0\\x03\\xFF;").unwrap(), b"\0\x03\xff;");
        assert_eq!(unescape("\\\\").unwrap(), b"\\");
        assert_eq!(unescape("").unwrap(), b"");
        assert!(unescape("\\x3").is_err());
        assert!(unescape("\\xzz").is_err());
        assert!(unescape("ab\\").is_err());
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
    }

    #[test]
    fn escape_shows_awkward_bytes() {
        assert_eq!(escape(b"hi\r\n\x00\xff\""), "hi\\r\\n\\0\\xff\\\"");
    }
}
