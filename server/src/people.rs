//! Agencies, people and their roles: who someone is, which agency they speak
//! for, and what they are in a given meeting. Each name here parses and
//! validates its input once, at the boundary.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| InvalidInput(concat!("not a valid ", $what, " id")))
            }
        }
    };
}

uuid_id!(AgencyId, "agency");
uuid_id!(UserId, "user");
uuid_id!(TokenId, "token");
uuid_id!(InvitationId, "invitation");

/// A validation failure, with a message fit to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub &'static str);

/// Characters refused in every name and title shown to others: control
/// characters, the bidirectional embeddings, overrides and isolates (U+202A-
/// U+202E, U+2066-U+2069), the directional marks (U+200E, U+200F, U+061C)
/// and the line and paragraph separators (U+2028, U+2029). With them a name
/// can be made to display as something else ("Polis" written backwards after
/// a U+202E, a title that seems to end early), so they are refused rather
/// than stripped: what is stored is exactly what was typed.
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
        )
}

/// Trims surrounding whitespace, but not the line and paragraph separators
/// (which are whitespace to Unicode): those are refused wherever they are.
pub fn trim_text(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_whitespace() && !matches!(c, '\u{2028}' | '\u{2029}'))
}

/// The one check of displayed text (names, titles, places, token names):
/// trimmed, non-empty, at most `max` characters, nothing
/// [`is_forbidden_in_text`]. `what` describes the rule to the user.
pub fn checked_text(raw: &str, max: usize, what: &'static str) -> Result<String, InvalidInput> {
    let trimmed = trim_text(raw);
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(InvalidInput(what));
    }
    if trimmed.chars().any(is_forbidden_in_text) {
        return Err(InvalidInput(
            "names and titles must not contain control characters, bidirectional \
             controls (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C) or line \
             separators (U+2028, U+2029)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A login name: 2-64 characters of `a-z 0-9 . _ -`, case-insensitive.
///
/// Every way a name enters (account creation, sign-in, invitations, the
/// CLI, the sign-in throttle) goes through [`Username::parse`], so that
/// `"skola"`, `"Skola "`, `"\u{a0}skola"` and fullwidth `"ｓｋｏｌａ"` are one
/// and the same name everywhere: NFKC folds compatibility forms (fullwidth
/// letters, ligatures, no-break and ideographic spaces) into plain ones,
/// Unicode whitespace is trimmed, letters are lowercased, and what remains
/// must be plain ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        use unicode_normalization::UnicodeNormalization;
        // Bound the work before normalising: NFKC can expand a character
        // into several.
        let ok_len = raw.len() <= 1024;
        let folded: String = if ok_len {
            raw.nfkc().collect()
        } else {
            String::new()
        };
        let name = folded.trim().to_lowercase();
        let ok = ok_len
            && (2..=64).contains(&name.len())
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if ok {
            Ok(Self(name))
        } else {
            Err(InvalidInput(
                "a username is 2-64 characters: letters a-z, digits, '.', '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's or agency's name as shown to others.
pub fn parse_name(raw: &str) -> Result<String, InvalidInput> {
    checked_text(raw, 120, "a name is 1-120 characters")
}

/// A new password. Long passphrases are encouraged; nothing else is imposed
/// (NIST SP 800-63B).
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 10;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(InvalidInput("a password must be at least 10 characters"));
        }
        if n > 256 {
            return Err(InvalidInput("a password must be at most 256 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agency {
    pub id: AgencyId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub display_name: String,
    pub agency: Option<Agency>,
    pub is_admin: bool,
    /// Set by an administrator: may create meetings (and so become their
    /// secretary). See [`User::may_create_meetings`].
    pub can_create_meetings: bool,
    #[serde(skip)]
    pub has_password: bool,
}

impl User {
    /// Who may create meetings: administrators, and those an administrator
    /// has given the right. Anyone else could otherwise make themselves the
    /// secretary of a meeting of their own.
    pub fn may_create_meetings(&self) -> bool {
        self.is_admin || self.can_create_meetings
    }
}

/// A person's role in one meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sekreterare: owns the agenda and the protocol's structure.
    Secretary,
    /// Ordförande.
    Chair,
    /// Justerare: verifies the protocol after it is locked.
    Justerare,
    /// Ledamot, ersättare or adjungerad: reads, and writes what they own.
    Member,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Secretary => "secretary",
            Role::Chair => "chair",
            Role::Justerare => "justerare",
            Role::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "secretary" => Ok(Role::Secretary),
            "chair" => Ok(Role::Chair),
            "justerare" => Ok(Role::Justerare),
            "member" => Ok(Role::Member),
            _ => Err(InvalidInput(
                "a role is one of secretary, chair, justerare, member",
            )),
        }
    }
}

/// A section id: 1-64 characters of `a-z 0-9 -`, unique within a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SectionId(String);

impl SectionId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput(
                "a section id is 1-64 characters: letters a-z, digits or '-'",
            ))
        }
    }

    /// Derives an id from a title: "Äldreomsorg" -> "aldreomsorg".
    pub fn from_title(title: &str) -> Self {
        let mut id = String::new();
        for c in title.to_lowercase().chars() {
            let c = match c {
                'å' | 'ä' | 'á' | 'à' => 'a',
                'ö' | 'ø' | 'ó' => 'o',
                'é' | 'è' => 'e',
                'ü' => 'u',
                c => c,
            };
            if c.is_ascii_alphanumeric() {
                id.push(c);
            } else if !id.ends_with('-') && !id.is_empty() {
                id.push('-');
            }
            if id.len() >= 56 {
                break;
            }
        }
        let id = id.trim_end_matches('-');
        Self(if id.is_empty() {
            "section".into()
        } else {
            id.to_owned()
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who writes a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SectionOwner {
    Agency { agency_id: AgencyId },
    User { user_id: UserId },
    Secretary,
}

impl SectionOwner {
    /// The owner as the document's agenda shows it.
    pub fn label(&self) -> String {
        match self {
            SectionOwner::Agency { agency_id } => format!("agency:{agency_id}"),
            SectionOwner::User { user_id } => format!("user:{user_id}"),
            SectionOwner::Secretary => "secretary".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub id: SectionId,
    pub number: String,
    pub title: String,
    pub owner: SectionOwner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub user: User,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        assert_eq!(
            Username::parse(" Polis.Anna ").unwrap().as_str(),
            "polis.anna"
        );
        assert!(Username::parse("a").is_err());
        assert!(Username::parse("anna svensson").is_err());
        assert!(Username::parse("åsa").is_err());
    }

    #[test]
    fn usernames_fold_padding_and_compatibility_forms() {
        for raw in [
            "skola",
            "skola ",
            "\u{a0}skola",
            "\tskola",
            "skola\u{3000}",
            "ｓｋｏｌａ",
            "SKOLA",
            "\u{2003}Skola\n",
        ] {
            assert_eq!(Username::parse(raw).unwrap().as_str(), "skola", "{raw:?}");
        }
        assert!(Username::parse("sko la").is_err());
        assert!(
            Username::parse("sko\u{200b}la").is_err(),
            "zero-width space"
        );
        assert!(Username::parse("skola\u{202e}").is_err());
        assert!(Username::parse(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn names_refuse_bidi_controls_and_separators() {
        for bad in [
            "Polis\u{202e}siloP",
            "\u{202a}x",
            "a\u{2066}b",
            "a\u{2069}",
            "a\u{200e}b",
            "a\u{200f}b",
            "a\u{061c}b",
            "rad\u{2028}två",
            "stycke\u{2029}två",
            "slut\u{2029}",
            "\u{2028}början",
            "nul\u{0}",
        ] {
            let err = parse_name(bad).unwrap_err();
            assert!(err.0.contains("bidirectional"), "{bad:?}: {err}");
        }
        assert_eq!(
            parse_name("  Räddningstjänsten ").unwrap(),
            "Räddningstjänsten"
        );
        assert_eq!(
            parse_name("شرطة").unwrap(),
            "شرطة",
            "right-to-left text itself is fine"
        );
        assert!(parse_name("").is_err());
        assert!(parse_name(&"x".repeat(121)).is_err());
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert!(NewPassword::parse("kort").is_err());
        assert!(NewPassword::parse("tio tecken").is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("hemligt lösen").unwrap()),
            "NewPassword(***)"
        );
    }

    #[test]
    fn section_ids_from_swedish_titles() {
        assert_eq!(SectionId::from_title("Äldreomsorg").as_str(), "aldreomsorg");
        assert_eq!(
            SectionId::from_title("Enheten för ung fritid").as_str(),
            "enheten-for-ung-fritid"
        );
        assert_eq!(SectionId::from_title("§§").as_str(), "section");
        assert!(SectionId::parse("polis").is_ok());
        assert!(SectionId::parse("Polis").is_err());
        assert!(SectionId::parse("").is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Secretary, Role::Chair, Role::Justerare, Role::Member] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn dates_and_times_are_checked() {
        assert_eq!(parse_date("2018-03-09").unwrap(), "2018-03-09");
        assert!(parse_date("2018-02-30").is_err());
        assert_eq!(parse_time("09:00").unwrap(), "09:00");
        assert!(parse_time("25:00").is_err());
    }
}
