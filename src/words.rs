//! Counts in words, for the log and messages: "1 line", "2 lines".

/// `n` and `what`, plural unless `n` is 1: `count(1, "line")` is "1 line",
/// `count(3, "line")` "3 lines".
pub fn count(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n if what.ends_with("ch") || what.ends_with('s') || what.ends_with('x') => {
            format!("{n} {what}es")
        }
        n => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "line"), "1 line");
        assert_eq!(count(0, "line"), "0 lines");
        assert_eq!(count(3, "datagram"), "3 datagrams");
        assert_eq!(count(2, "batch"), "2 batches");
    }
}
