//! Target `cli`: the console's command parser and completion on any line.
//! Neither panics; completions are non-empty words; a line parse accepts
//! parses the same way with extra blanks around its words.

use ctrlplane::cli::grammar::{complete, parse};

pub fn run(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(line);
    if let Ok(Some(cmd)) = &parsed {
        let spaced: String = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("   ");
        let again = parse(&format!("  {spaced}\t"));
        assert_eq!(
            again.as_ref().ok(),
            Some(&Some(cmd.clone())),
            "{line:?} vs {spaced:?}"
        );
    }
    for w in complete(line, &[0, 1, 65535]) {
        assert!(
            !w.is_empty() && !w.contains(char::is_whitespace),
            "completion {w:?}"
        );
    }
    // Every prefix of the line completes too (as the prompt does per key).
    for (i, _) in line.char_indices().take(64) {
        let _ = complete(&line[..i], &[]);
    }
}
