//! argh's own messages about the options, said in the tool's words: lowercase, the
//! option and value first, a did-you-mean for a misspelt option.

/// The message for argh's `output`, given the `help` text (where the options are read
/// from, so the list cannot fall behind).
pub fn rewrite(output: &str, help: &str) -> String {
    let output = output.trim_end();
    if let Some(arg) = output.strip_prefix("Unrecognized argument: ") {
        return unknown(arg, &options(help));
    }
    if let Some(rest) = output.strip_prefix("Error parsing option '")
        && let Some((option, rest)) = rest.split_once("' with value '")
        && let Some((value, why)) = rest.split_once("': ")
    {
        return format!("{option} {value}: {}", number(why));
    }
    if let Some(rest) = output.strip_prefix("No value provided for option '")
        && let Some((option, _)) = rest.split_once('\'')
    {
        return format!("{option} needs a value");
    }
    crate::error::lowercase_first(&output.replace('\n', "; "))
}

/// An argument argh does not know.
fn unknown(arg: &str, options: &[String]) -> String {
    if !arg.starts_with('-') {
        return format!("unexpected argument '{arg}'");
    }
    let name = arg.split('=').next().unwrap_or(arg);
    let closest = options
        .iter()
        .map(|option| (distance(name, option), option))
        .filter(|(d, option)| *d <= 2.max(option.len() / 4))
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((_, option)) if arg.contains('=') && option == name => format!(
            "unknown option {arg}; options take their value after a space: {option} {}",
            arg.split_once('=').map_or("", |(_, value)| value)
        ),
        Some((_, option)) => format!("unknown option {arg}; did you mean {option}?"),
        None => format!("unknown option {arg}"),
    }
}

/// Why a number did not parse, as the user needs it said.
fn number(why: &str) -> String {
    match why {
        "invalid digit found in string" => "expected a whole number, 0 or more".into(),
        "number too large to fit in target type" => "too large".into(),
        "cannot parse integer from empty string" => "expected a whole number".into(),
        other => crate::error::lowercase_first(other),
    }
}

/// The long options listed in `help`.
fn options(help: &str) -> Vec<String> {
    help.lines()
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|word| word.starts_with('-'))
        })
        .map(|word| word.trim_end_matches(','))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_string)
        .collect()
}

/// How many single-byte edits turn `a` into `b` (Levenshtein).
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "Options:\n  --baud   rate\n  --reconnect  again\n  -v, --verbose  more\n  --max-line  n\n  --max-clients  n\n";

    #[test]
    fn argh_messages_in_the_tools_words() {
        assert_eq!(
            rewrite("Unrecognized argument: --reconect\n", HELP),
            "unknown option --reconect; did you mean --reconnect?"
        );
        assert_eq!(
            rewrite("Unrecognized argument: --verbsoe", HELP),
            "unknown option --verbsoe; did you mean --verbose?"
        );
        assert_eq!(
            rewrite("Unrecognized argument: --max-clinets", HELP),
            "unknown option --max-clinets; did you mean --max-clients?"
        );
        assert_eq!(
            rewrite("Unrecognized argument: --baud=9600", HELP),
            "unknown option --baud=9600; options take their value after a space: --baud 9600"
        );
        assert_eq!(
            rewrite("Unrecognized argument: --frobnicate", HELP),
            "unknown option --frobnicate"
        );
        assert_eq!(
            rewrite(
                "Error parsing option '--baud' with value 'abc': invalid digit found in string",
                HELP
            ),
            "--baud abc: expected a whole number, 0 or more"
        );
        assert_eq!(
            rewrite(
                "Error parsing option '--max-line' with value '99999999999999999999': number too large to fit in target type",
                HELP
            ),
            "--max-line 99999999999999999999: too large"
        );
        assert_eq!(
            rewrite("No value provided for option '--baud'.", HELP),
            "--baud needs a value"
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
