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

/// What two display names are compared by when one meeting must not hold
/// both: a reader could not tell them apart. Names are compared after NFKC
/// (fullwidth letters, ligatures and no-break spaces fold into plain ones),
/// with runs of whitespace as one space, and through the confusable
/// skeleton of Unicode TS #39 (which also drops invisible characters), once
/// lowercased and once as written. So "Anders Holm", "anders  holm",
/// "ＡＮＤＥＲＳ ＨＯＬＭ", "Аnders Holm" (a Cyrillic А) and "Anders Holrn"
/// are one name, while "Åsa" and "Asa", or "Öberg" and "Oberg", are two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameKey {
    folded: String,
    cased: String,
}

impl NameKey {
    pub fn of(name: &str) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let plain: String = name.nfkc().collect();
        let spaced = plain.split_whitespace().collect::<Vec<_>>().join(" ");
        let skeleton = |s: &str| -> String {
            let s: String = unicode_security::skeleton(s).collect();
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let lower: String = spaced.to_lowercase().nfkc().collect();
        Self {
            folded: skeleton(&lower),
            cased: skeleton(&spaced),
        }
    }

    /// Whether the two names would pass for one another.
    pub fn clashes(&self, other: &NameKey) -> bool {
        self.folded == other.folded || self.cased == other.cased
    }
}

/// Why a person cannot join a meeting under their display name.
pub const NAME_TAKEN: &str = "someone in this meeting already has this name, or one that reads \
     the same (names are compared without regard to case, Unicode forms or look-alike letters): \
     give the new person a name that tells them apart, for instance with their agency";

/// The first pair of names in `names` that would pass for one another.
pub fn first_clash<'a>(names: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let keys: Vec<NameKey> = names.iter().map(|n| NameKey::of(n)).collect();
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate().skip(i + 1) {
            if a.clashes(b) {
                return Some((names[i], names[j]));
            }
        }
    }
    None
}

/// Whether `name` would pass for one of `others` (a newcomer beside a
/// meeting's participants).
pub fn reads_as_any<'a>(name: &str, others: impl IntoIterator<Item = &'a str>) -> bool {
    let key = NameKey::of(name);
    others
        .into_iter()
        .any(|other| NameKey::of(other).clashes(&key))
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
    /// Who vouched for this account's identity, if anyone has: an
    /// administrator creating it, or confirming an account that was made
    /// by accepting an invitation. See [`User::may_sign_off`].
    pub vouched: Option<Vouch>,
}

impl User {
    /// Whether this account may sign a protocol off or reject it as its
    /// chair or a justerare: only when an administrator vouches for who it
    /// is. The secretary alone could otherwise invite two accounts under
    /// the chair's and the justerare's names and sign as both.
    pub fn may_sign_off(&self) -> bool {
        self.vouched.is_some()
    }

    /// Who may create meetings: administrators, and those an administrator
    /// has given the right. Anyone else could otherwise make themselves the
    /// secretary of a meeting of their own.
    pub fn may_create_meetings(&self) -> bool {
        self.is_admin || self.can_create_meetings
    }
}

/// Who vouches for an account as it is created, or for an invited account
/// when an administrator confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voucher {
    /// An administrator signed in to the API.
    Administrator(UserId),
    /// An operator at the command line (who has the database anyway).
    CommandLine,
    /// The demo data.
    Demo,
}

impl Voucher {
    /// `api`, `cli` or `demo`, as recorded.
    pub fn via(&self) -> &'static str {
        match self {
            Voucher::Administrator(_) => "api",
            Voucher::CommandLine => "cli",
            Voucher::Demo => "demo",
        }
    }

    pub fn administrator(&self) -> Option<UserId> {
        match self {
            Voucher::Administrator(id) => Some(*id),
            _ => None,
        }
    }
}

/// A vouching as recorded: how, by which administrator (when one signed
/// in to do it), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vouch {
    /// `api` (an administrator, named in `by`), `cli` (an operator at the
    /// command line), `demo`, or `upgrade` (an account that existed before
    /// vouching was recorded and did not come from an invitation).
    pub via: String,
    /// The administrator who vouched, through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<VouchingAdministrator>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VouchingAdministrator {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub username: String,
    pub display_name: String,
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
    /// The name shown for a section the secretary writes (the agenda in the
    /// document, the protocol's items).
    pub const SECRETARY_NAME: &'static str = "Sekreterare";

    /// The owner as the document's agenda shows it.
    pub fn label(&self) -> String {
        match self {
            SectionOwner::Agency { agency_id } => format!("agency:{agency_id}"),
            SectionOwner::User { user_id } => format!("user:{user_id}"),
            SectionOwner::Secretary => "secretary".into(),
        }
    }
}

/// A section's § number as typed ("2", "2.1", "A"): a one-line text of at
/// most 16 characters.
pub fn parse_section_number(raw: &str) -> Result<String, InvalidInput> {
    checked_text(raw, 16, "a § number is 1-16 characters")
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
    fn one_rule_for_every_human_readable_field() {
        for bad in [
            "Fel\u{202e}tgiläv",
            "osynligt\u{200b}ord",
            "bom\u{feff}",
            "ord\u{2060}fog",
            "\u{fff9}dold\u{fffb}",
            "\u{e0041}tagg",
            "tab\tbar",
        ] {
            for lines in [Lines::One, Lines::Many] {
                let err = human_text(bad, 100, lines, "len").unwrap_err();
                assert_eq!(err.0, FORBIDDEN_TEXT, "{bad:?} {lines:?}");
            }
        }
        // Line breaks: only where several lines make sense.
        assert!(human_text("rad ett\nrad två", 100, Lines::One, "len").is_err());
        assert!(parse_name("rad ett\nrad två").is_err());
        assert_eq!(
            parse_reason(" § 3 saknas.\r\n§ 4 är fel.\r\n").unwrap(),
            "§ 3 saknas.\n§ 4 är fel."
        );
        assert_eq!(parse_reason("a\rb").unwrap(), "a\nb");
        assert!(
            parse_reason("rad\u{2028}två").is_err(),
            "use a plain line break"
        );
        assert_eq!(
            parse_reason(" \n ").unwrap_err().0,
            "say why the protocol is rejected"
        );
        assert!(parse_reason(&"x".repeat(MAX_REASON_CHARS)).is_ok());
        assert!(parse_reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        // Joiners that scripts and emoji need stay.
        assert!(parse_name("می\u{200c}خواهم").is_ok());
        assert!(parse_name("👩\u{200d}💻 Anna").is_ok());
        assert_eq!(optional_name("  ").unwrap(), "");
        assert!(optional_name("Plats\u{202e}").is_err());
    }

    #[test]
    fn names_that_read_the_same_clash() {
        let holm = NameKey::of("Anders Holm");
        for same in [
            "anders holm",
            "ANDERS  HOLM",
            "ＡＮＤＥＲＳ ＨＯＬＭ",
            "Anders\u{a0}Holm",
            "\u{410}nders Holm",
            "Anders Ho\u{200c}lm",
            "Anders Holrn",
            "Anders Н\u{43e}lm",
        ] {
            assert!(NameKey::of(same).clashes(&holm), "{same:?}");
        }
        for other in ["Anders Holmberg", "Andreas Holm", "Anders Hälm"] {
            assert!(!NameKey::of(other).clashes(&holm), "{other:?}");
        }
        assert!(!NameKey::of("Åsa Lind").clashes(&NameKey::of("Asa Lind")));
        assert!(!NameKey::of("Öberg").clashes(&NameKey::of("Oberg")));
        assert_eq!(
            first_clash(&["Eva", "Anders Holm", "Maria", "anders holm"]),
            Some(("Anders Holm", "anders holm"))
        );
        assert_eq!(first_clash(&["Eva", "Anders Holm", "Maria"]), None);
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
