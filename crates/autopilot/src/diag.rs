//! Diagnostics: what is wrong in a policy file, and where.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is not valid; no policy in its document is loaded.
    Error,
    /// Suspicious but accepted.
    Warning,
}

/// One finding at a position of the file (1-based line and column, in
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column: message`, the form editors and CI annotate.
    pub fn in_file(&self, file: &str) -> String {
        format!("{file}:{self}")
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}:{}: {}", self.line, self.column, self.message),
            Severity::Warning => write!(
                f,
                "{}:{}: warning: {}",
                self.line, self.column, self.message
            ),
        }
    }
}

/// The closest of `known` to `input`, when close enough to be a likely
/// typo: a few edits apart (about one per three characters), ties broken
/// by Jaro-Winkler similarity.
pub(crate) fn suggest<'a>(
    input: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    known
        .into_iter()
        .filter_map(|k| {
            let k_lower = k.to_ascii_lowercase();
            let edits = strsim::damerau_levenshtein(&lower, &k_lower);
            let allowed = (k.chars().count() / 3).max(1);
            (edits <= allowed).then(|| (k, edits, strsim::jaro_winkler(&lower, &k_lower)))
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(k, _, _)| k)
}

/// "; did you mean `x`?" or nothing.
pub(crate) fn did_you_mean<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    suggest(input, known)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}
