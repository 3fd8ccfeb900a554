// Included by `build.rs`, which embeds what `dfas` returns for every built-in pattern without
// keywords, and by the test that checks the embedded DFAs against it: the one place their
// configuration is written.

/// The limits of a built-in dense DFA: larger ones are not built, and those detectors search
/// with their regex's lazy DFA.
fn dense_config() -> regex_automata::dfa::dense::Config {
    regex_automata::dfa::dense::Config::new()
        .dfa_size_limit(Some(64 << 10))
        .determinize_size_limit(Some(256 << 10))
}

/// The dense DFAs of `pattern` (the regex crate's syntax, matching bytes), serialised little
/// endian: forward and reverse when both fit (then they find the match), else the forward one.
pub(crate) fn dfas(pattern: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    use regex_automata::dfa::{dense, regex};
    use regex_automata::{nfa::thompson, util::syntax};
    let bytes = |d: &dense::DFA<Vec<u32>>| {
        let mut buf = vec![0; d.write_to_len()];
        d.write_to_little_endian(&mut buf).expect("sized");
        buf
    };
    let both = regex::Builder::new()
        .dense(dense_config())
        .syntax(syntax::Config::new().utf8(false))
        .thompson(thompson::Config::new().utf8(false))
        .build(pattern);
    if let Ok(re) = both {
        return Some((bytes(re.forward()), Some(bytes(re.reverse()))));
    }
    dense::Builder::new()
        .configure(dense_config())
        .syntax(syntax::Config::new().utf8(false))
        .thompson(thompson::Config::new().utf8(false))
        .build(pattern)
        .ok()
        .map(|f| (bytes(&f), None))
}
