//! Who may write where: the regions of a document (a section, the agenda,
//! other roots) and the ownership policy that decides, per region, whether
//! a person may write in it.

use std::sync::Arc;

use foldhash::HashMap;

use crate::{
    access::Principal,
    document::{AGENDA, SECTION_PREFIX},
    people::{Role, SectionOwner},
};

/// Where an item lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Region {
    Section(Arc<str>),
    Agenda,
    /// A root that is not part of the schema.
    Other(Arc<str>),
    /// Garbage-collected content: nothing can attach to it.
    Gone,
}

impl Region {
    pub(super) fn of_root(name: &str) -> Region {
        if let Some(id) = name.strip_prefix(SECTION_PREFIX) {
            Region::Section(id.into())
        } else if name == AGENDA {
            Region::Agenda
        } else {
            Region::Other(name.into())
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Section(id) => write!(f, "section {id}"),
            Region::Agenda => f.write_str("the agenda"),
            Region::Other(name) => write!(f, "root type {name:?}"),
            Region::Gone => f.write_str("deleted content"),
        }
    }
}

/// Who owns which section, as the agenda says right now.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    pub sections: HashMap<Arc<str>, SectionOwner>,
}

impl Ownership {
    pub fn from_sections(sections: Vec<crate::people::Section>) -> Self {
        Self {
            sections: sections
                .into_iter()
                .map(|s| (Arc::from(s.id.as_str()), s.owner))
                .collect(),
        }
    }

    /// Whether `who` may write in `region`. Ownership alone grants writing:
    /// an agency's participants write its sections, a named user theirs, the
    /// secretary the secretary's. Verifiers (justerare) and non-participants
    /// write nothing, and nobody writes the agenda (the server mirrors it)
    /// or roots outside the schema.
    pub fn may_write(&self, who: &Principal, region: &Region) -> bool {
        let Region::Section(id) = region else {
            return false;
        };
        let Some(role) = who.role else { return false };
        if role == Role::Justerare {
            return false;
        }
        match self.sections.get(id) {
            Some(SectionOwner::Agency { agency_id }) => who.agency_id == Some(*agency_id),
            Some(SectionOwner::User { user_id }) => who.user_id == *user_id,
            Some(SectionOwner::Secretary) => role == Role::Secretary,
            None => false,
        }
    }
}
