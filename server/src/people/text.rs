//! The one rule for human-readable text (names, titles, reasons): which
//! characters are refused, trimming, lengths, and the parsers built on it
//! (names, reasons, dates, times).

use super::InvalidInput;

/// Characters refused in every human-readable field (see [`human_text`]):
/// control characters (other than the line feed of a multi-line field),
/// the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
/// U+2066-U+2069), the directional marks (U+200E, U+200F, U+061C), the line
/// and paragraph separators (U+2028, U+2029), and invisible characters that
/// have no place in a name or a reason: the zero-width space (U+200B), the
/// word joiner and invisible operators (U+2060-U+2064), the deprecated
/// format characters (U+206A-U+206F), the byte order mark (U+FEFF), the
/// interlinear annotation characters (U+FFF9-U+FFFB, which hide text from
/// some renderers) and the tag characters (U+E0000-U+E007F). With them a
/// name can be made to display as something else ("Polis" written
/// backwards after a U+202E, a title that seems to end early, a reason
/// whose words appear in another order), so they are refused rather than
/// stripped: what is stored is exactly what was typed. The zero-width
/// joiner and non-joiner (U+200C, U+200D) stay allowed: Persian and Indic
/// names and emoji need them.
pub fn is_forbidden_in_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{200B}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Trims surrounding whitespace, but not the line and paragraph separators
/// (which are whitespace to Unicode): those are refused wherever they are.
pub fn trim_text(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_whitespace() && !matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Whether a human-readable field may hold several lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Names, titles, places, § numbers, agency, token and invitation
    /// names: one line, no line break of any kind.
    One,
    /// Free text such as a rejection's reason: line feeds allowed (CR LF
    /// and a lone CR are stored as LF), nothing else of the refused set.
    Many,
}

/// What the user is told when text holds a refused character.
pub const FORBIDDEN_TEXT: &str = "names, titles and reasons must not contain control characters, \
     bidirectional controls (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C), line separators \
     (U+2028, U+2029) or invisible characters (U+200B, U+2060-2064, U+206A-206F, U+FEFF, \
     U+FFF9-FFFB, tags U+E0000-E007F); only a reason may break lines, with plain line breaks";

/// The one rule for every human-readable field that people type and others
/// read (names, titles, places, agency, token and invitation names, section
/// titles and numbers, rejection reasons): trimmed, non-empty, at most
/// `max` characters, nothing [`is_forbidden_in_text`], and line breaks only
/// where `lines` allows them. `what` describes the length rule to the user.
/// Every path (API, CLI, demo) goes through here or through a wrapper of it
/// ([`checked_text`], [`parse_name`], [`parse_reason`],
/// `MeetingTitle::parse`).
pub fn human_text(
    raw: &str,
    max: usize,
    lines: Lines,
    what: &'static str,
) -> Result<String, InvalidInput> {
    let text = match lines {
        Lines::One => trim_text(raw).to_owned(),
        Lines::Many => trim_text(&raw.replace("\r\n", "\n").replace('\r', "\n")).to_owned(),
    };
    if text.is_empty() || text.chars().count() > max {
        return Err(InvalidInput(what));
    }
    let allowed_break = |c: char| lines == Lines::Many && c == '\n';
    if text
        .chars()
        .any(|c| is_forbidden_in_text(c) && !allowed_break(c))
    {
        return Err(InvalidInput(FORBIDDEN_TEXT));
    }
    Ok(text)
}

/// A one-line human-readable field (see [`human_text`]).
pub fn checked_text(raw: &str, max: usize, what: &'static str) -> Result<String, InvalidInput> {
    human_text(raw, max, Lines::One, what)
}

/// An optional one-line field (a meeting's body or place): empty stays
/// empty, anything else is a [`parse_name`].
pub fn optional_name(raw: &str) -> Result<String, InvalidInput> {
    if trim_text(raw).is_empty() {
        Ok(String::new())
    } else {
        parse_name(raw)
    }
}

/// Longest reason a rejection may give, in characters.
pub const MAX_REASON_CHARS: usize = 2_000;

/// Why the chair or a justerare rejects a protocol: required, several lines
/// allowed (see [`human_text`]).
pub fn parse_reason(raw: &str) -> Result<String, InvalidInput> {
    if trim_text(raw).is_empty() {
        return Err(InvalidInput("say why the protocol is rejected"));
    }
    human_text(
        raw,
        MAX_REASON_CHARS,
        Lines::Many,
        "a reason is at most 2000 characters",
    )
}

/// A person's or agency's name as shown to others.
pub fn parse_name(raw: &str) -> Result<String, InvalidInput> {
    checked_text(raw, 120, "a name is 1-120 characters")
}

/// `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Result<String, InvalidInput> {
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| InvalidInput("a date is written YYYY-MM-DD"))
}

/// `HH:MM`.
pub fn parse_time(raw: &str) -> Result<String, InvalidInput> {
    chrono::NaiveTime::parse_from_str(raw, "%H:%M")
        .map(|t| t.format("%H:%M").to_string())
        .map_err(|_| InvalidInput("a time is written HH:MM"))
}
