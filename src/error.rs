//! Errors of the pure core. Each carries the SQLSTATE it is raised with; the pgrx layer maps
//! them to `ereport(ERROR, …)` (see `api::raise`).
use std::fmt;

/// The SQLSTATEs kenbun raises. Names follow PostgreSQL's errcodes.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 22023
    InvalidParameterValue,
    /// 22P02
    InvalidTextRepresentation,
    /// 22007
    InvalidDatetimeFormat,
    /// 2201B
    InvalidRegularExpression,
    /// 42703
    UndefinedColumn,
    /// 42704
    UndefinedObject,
    /// 42804
    DatatypeMismatch,
    /// 42P17 (invalid_object_definition): e.g. a cycle of segments
    InvalidObjectDefinition,
    /// 55000
    ObjectNotInPrerequisiteState,
    /// 0A000
    FeatureNotSupported,
    /// 54000
    ProgramLimitExceeded,
    /// 42809
    WrongObjectType,
}

impl SqlState {
    pub fn code(self) -> &'static str {
        match self {
            SqlState::InvalidParameterValue => "22023",
            SqlState::InvalidTextRepresentation => "22P02",
            SqlState::InvalidDatetimeFormat => "22007",
            SqlState::InvalidRegularExpression => "2201B",
            SqlState::UndefinedColumn => "42703",
            SqlState::UndefinedObject => "42704",
            SqlState::DatatypeMismatch => "42804",
            SqlState::InvalidObjectDefinition => "42P17",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::ProgramLimitExceeded => "54000",
            SqlState::WrongObjectType => "42809",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct KenbunError {
    pub code: SqlState,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for KenbunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl KenbunError {
    pub fn new(code: SqlState, message: impl Into<String>) -> Self {
        KenbunError {
            code,
            message: message.into(),
            hint: None,
        }
    }
    /// An error about the rule document at JSON path `path` (`$.all[2].op`).
    pub fn at(code: SqlState, path: &str, message: impl fmt::Display) -> Self {
        KenbunError::new(code, format!("invalid rule at {path}: {message}"))
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

pub type Result<T> = std::result::Result<T, KenbunError>;

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a plausible typo.
/// Longest text compared by edit distance for "did you mean" hints: the distance is quadratic, and a
/// long text is no typo of another anyway.
pub const TYPO_MAX_CHARS: usize = 200;

pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if name.chars().count() > TYPO_MAX_CHARS {
        return None;
    }
    let lname = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lname, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean \"{c}\"?"))
}
