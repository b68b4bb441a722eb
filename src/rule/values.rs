//! Validation of value literals that PostgreSQL will parse again: intervals and ISO dates.
//! The accepted forms are a strict subset of what PostgreSQL accepts, so a value that passes here
//! never fails later at execution.

/// The units of an interval, matched case-insensitively (ASCII).
pub const UNITS: &[&str] = &[
    "microsecond",
    "microseconds",
    "millisecond",
    "milliseconds",
    "second",
    "seconds",
    "sec",
    "secs",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "mon",
    "mons",
    "year",
    "years",
    "yr",
    "yrs",
];

/// Accepts "30 days", "1 day 12 hours", "2.5 hours", "90 minutes". Returns an error message otherwise.
pub fn parse_interval(s: &str) -> Result<(), String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.is_empty() {
        return Err("the interval is empty".into());
    }
    if s.len() > MAX_INTERVAL_BYTES {
        return Err("the interval is too long".into());
    }
    if words.len() % 2 != 0 {
        return Err(format!(
            "\"{s}\" is not an interval: expected pairs of a number and a unit"
        ));
    }
    // PostgreSQL refuses a unit given twice ("1 day 2 days"), and fractional seconds beside
    // milliseconds or microseconds; the total is capped so that neither the interval's fields nor
    // now() - interval can leave their ranges
    let mut seen: Vec<&str> = vec![];
    let mut fractional_seconds = false;
    let mut seconds_total = 0f64;
    for pair in words.chunks(2) {
        let (n, unit) = (pair[0], pair[1]);
        let numeric = !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit() || c == '.')
            && n.chars().filter(|c| *c == '.').count() <= 1
            && n.chars().any(|c| c.is_ascii_digit())
            && n.len() <= MAX_NUMBER_CHARS;
        if !numeric {
            return Err(format!(
                "\"{s}\" is not an interval: \"{n}\" is not a non-negative number"
            ));
        }
        let lower = unit.to_ascii_lowercase();
        if !UNITS.contains(&lower.as_str()) {
            return Err(format!("\"{s}\" is not an interval: unknown unit \"{unit}\""));
        }
        let (group, seconds) = unit_group(&lower);
        if seen.contains(&group) {
            return Err(format!("\"{s}\" is not an interval: {group} are given twice"));
        }
        let value: f64 = n.parse().unwrap_or(f64::INFINITY);
        if group == "seconds" && n.contains('.') && value.fract() != 0.0 {
            fractional_seconds = true;
        }
        let subsecond = |g: &str| matches!(g, "milliseconds" | "microseconds");
        if fractional_seconds && (subsecond(group) || seen.iter().any(|g| subsecond(g))) {
            return Err(format!(
                "\"{s}\" is not an interval: fractional seconds cannot be combined with milliseconds or microseconds"
            ));
        }
        seen.push(group);
        seconds_total += value * seconds;
    }
    if seconds_total > MAX_INTERVAL_YEARS * 365.25 * 86_400.0 * (1.0 + 1e-12) {
        return Err(format!(
            "\"{s}\" is not an interval kenbun accepts: longer than {MAX_INTERVAL_YEARS} years"
        ));
    }
    Ok(())
}

/// The (months, days, microseconds) fields PostgreSQL stores for a valid interval whose numbers are
/// all whole (a fraction spills into the smaller fields, which this does not model): None otherwise.
/// `now() - a <= now() - b` whenever every field of `a` is at least that of `b`.
pub fn interval_fields(s: &str) -> Option<[i128; 3]> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut f = [0i128; 3];
    for pair in words.chunks(2) {
        let [n, unit] = pair else { return None };
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i128 = n.parse().ok()?;
        let (group, _) = unit_group(&unit.to_ascii_lowercase());
        let (i, mult) = match group {
            "years" => (0, 12),
            "months" => (0, 1),
            "weeks" => (1, 7),
            "days" => (1, 1),
            "hours" => (2, 3_600_000_000),
            "minutes" => (2, 60_000_000),
            "seconds" => (2, 1_000_000),
            "milliseconds" => (2, 1_000),
            _ => (2, 1),
        };
        f[i] += n * mult;
    }
    Some(f)
}

/// The longest interval text, in bytes.
pub const MAX_INTERVAL_BYTES: usize = 200;
/// The longest number of an interval (digits and at most one dot).
pub const MAX_NUMBER_CHARS: usize = 12;

/// The longest interval accepted: `now() - interval` must stay a valid timestamp.
pub const MAX_INTERVAL_YEARS: f64 = 1000.0;

/// The field a unit sets (PostgreSQL accepts each field once) and its length in seconds.
pub(crate) fn unit_group(unit: &str) -> (&'static str, f64) {
    match unit {
        "microsecond" | "microseconds" => ("microseconds", 1e-6),
        "millisecond" | "milliseconds" => ("milliseconds", 1e-3),
        "second" | "seconds" | "sec" | "secs" => ("seconds", 1.0),
        "minute" | "minutes" | "min" | "mins" => ("minutes", 60.0),
        "hour" | "hours" | "hr" | "hrs" => ("hours", 3_600.0),
        "day" | "days" => ("days", 86_400.0),
        "week" | "weeks" => ("weeks", 7.0 * 86_400.0),
        "month" | "months" | "mon" | "mons" => ("months", 365.25 / 12.0 * 86_400.0),
        _ => ("years", 365.25 * 86_400.0),
    }
}

fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&s[..n]).ok()?.parse().ok()
}

/// Is the text an ISO 8601 date (`2024-01-31`) or timestamp (`2024-01-31T12:00`, `…:00Z`, `…+02:00`)?
pub fn is_iso_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(y), Some(m), Some(d)) = (
        digits(b, 4),
        b.get(5..).and_then(|r| digits(r, 2)),
        b.get(8..).and_then(|r| digits(r, 2)),
    ) else {
        return false;
    };
    if b[4] != b'-' || b[7] != b'-' || !(1..=9999).contains(&y) || !(1..=12).contains(&m) {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
    if d == 0 || d > mdays {
        return false;
    }
    let rest = &b[10..];
    if rest.is_empty() {
        return true;
    }
    if rest[0] != b'T' && rest[0] != b' ' {
        return false;
    }
    let t = &rest[1..];
    let (Some(hh), Some(mm)) = (digits(t, 2), t.get(3..).and_then(|r| digits(r, 2))) else {
        return false;
    };
    if t[2] != b':' || hh > 23 || mm > 59 {
        return false;
    }
    let mut i = 5;
    if t.get(i) == Some(&b':') {
        match t.get(i + 1..).and_then(|r| digits(r, 2)) {
            Some(ss) if ss <= 59 => i += 3,
            _ => return false,
        }
        if t.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while t.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start || i - start > 6 {
                return false;
            }
        }
    }
    match &t[i..] {
        [] | [b'Z'] => true,
        [sign, rest @ ..] if *sign == b'+' || *sign == b'-' => match rest {
            [a, b2] => digits(&[*a, *b2], 2).is_some_and(|h| h <= 14),
            [a, b2, b':', c, d2] => {
                digits(&[*a, *b2], 2).is_some_and(|h| h <= 14) && digits(&[*c, *d2], 2).is_some_and(|m| m <= 59)
            }
            _ => false,
        },
        _ => false,
    }
}
