//! Names: login names ([`Username`]), display names that must not pass for
//! one another in one meeting ([`NameKey`]), and new passwords.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::InvalidInput;

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
