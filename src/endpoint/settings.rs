//! The one parser for the `,key=value` settings that follow an endpoint's address:
//! every kind walks its settings here, so they are spelled, repeated and refused the
//! same way everywhere.

use std::time::Duration;

/// The longest time any option or setting may name (`--flush-after`, `--settle`,
/// `settle=`, `keepalive=`, `--stats`): a day is more than any of them needs, and it
/// keeps every deadline far from overflowing.
pub const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Walks the `,key=value` settings in `parts`; `name` starts every message. `known`
/// lists the keys, for messages; each may come once, but those in `repeatable`.
/// `setting` takes a key and its value and returns false for a key it does not know,
/// or why the value is wrong.
pub fn each_setting<'a>(
    name: &str,
    parts: impl Iterator<Item = &'a str>,
    known: &str,
    repeatable: &[&str],
    mut setting: impl FnMut(&'a str, &'a str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut seen = Vec::new();
    for part in parts {
        let bad = |why: &str| format!("{name}: bad setting '{part}': {why}");
        let Some((key, value)) = part.split_once('=') else {
            return Err(bad(&format!("expected key=value, one of {known}")));
        };
        if seen.contains(&key) && !repeatable.contains(&key) {
            return Err(bad("given twice"));
        }
        seen.push(key);
        if !setting(key, value).map_err(|why| bad(&why))? {
            return Err(bad(&format!("unknown setting; known ones are {known}")));
        }
    }
    Ok(())
}

/// Splits `rest` (what follows `scheme://` in the argument `text`) into its address and
/// its settings, each handed to `setting` (see [`each_setting`]); returns the address.
pub fn address_and_settings<'a>(
    text: &str,
    rest: &'a str,
    known: &str,
    repeatable: &[&str],
    setting: impl FnMut(&'a str, &'a str) -> Result<bool, String>,
) -> Result<&'a str, String> {
    let mut parts = rest.split(',');
    let head = parts.next().unwrap_or_default();
    each_setting(text, parts, known, repeatable, setting)?;
    Ok(head)
}

/// Parses `on` or `off`.
pub fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// This machine's name (empty if it has none): an MQTT client's default id, the
/// console page's header.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, which we own.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if ok {
            return String::from_utf8_lossy(&buf[..len]).into_owned();
        }
    }
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut seen = Vec::new();
        address_and_settings(text, text, "a, b", &["b"], |key, value| {
            seen.push((key.to_string(), value.to_string()));
            Ok(key == "a" || key == "b")
        })?;
        Ok(seen)
    }

    #[test]
    fn settings_are_walked_and_refused_alike() {
        assert_eq!(walk("x,a=1,b=2,b=3").unwrap().len(), 3);
        assert!(
            walk("x,a=1,a=2")
                .unwrap_err()
                .ends_with("'a=2': given twice")
        );
        assert!(
            walk("x,c=1")
                .unwrap_err()
                .contains("unknown setting; known ones are a, b")
        );
        assert!(
            walk("x,a")
                .unwrap_err()
                .contains("expected key=value, one of a, b")
        );
        assert_eq!(on_off("on"), Some(true));
        assert_eq!(on_off("0"), None);
    }
}
