//! What someone is in a meeting ([`Role`], [`Participant`]) and the agenda's
//! sections: their ids, numbers and owners.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{AgencyId, InvalidInput, User, UserId, by_name, checked_text};

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
    /// Every role, the secretary first.
    pub const ALL: [Role; 4] = [Role::Secretary, Role::Chair, Role::Justerare, Role::Member];

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

    /// The inverse of [`Role::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(&Self::ALL, Self::as_str, s).ok_or(InvalidInput(
            "a role is one of secretary, chair, justerare, member",
        ))
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
