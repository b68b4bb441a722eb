//! Quoting. Every identifier kenbun writes goes through `ident`, every string value through `literal`.

/// Always-quoted identifier, as `quote_ident` would produce when quoting is needed.
pub fn ident(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        if c != '\0' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// A string literal that reads the same whatever `standard_conforming_strings` is, like `quote_literal`.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A typed literal: `'v'::type`.
pub fn typed(s: &str, type_name: &str) -> String {
    format!("{}::{}", literal(s), type_name)
}

/// Escapes LIKE metacharacters so the text matches itself (escape character `\`).
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
