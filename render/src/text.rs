//! The wording every rendering shares, in Swedish, so that HTML, Markdown
//! and PDF say the same things in the same order.

use crate::model::{Item, Person, Protocol, Rendition, display_time, role_label, swedish_date};

/// The header's facts: label and value.
pub fn facts(p: &Protocol) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(date) = &p.meeting.date {
        out.push(("Datum", swedish_date(date)));
    }
    if let Some(time) = &p.meeting.time {
        out.push(("Tid", format!("kl. {time}")));
    }
    if !p.meeting.place.is_empty() {
        out.push(("Plats", p.meeting.place.clone()));
    }
    out
}

/// Heading of the attendance group for people without an agency.
pub const NO_AGENCY: &str = "Övriga";

/// Who was present, grouped by agency as a Swedish protocol lists them:
/// agencies in Swedish alphabetical order (å, ä, ö last), people without
/// one last under "Övriga"; within a group the protocol's own order (chair,
/// secretary, justerare, members, then by name), each with their role
/// unless they are a member: "Anders Holm, ordförande".
pub fn attendance(p: &Protocol) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for person in &p.participants {
        let agency = person
            .agency
            .clone()
            .unwrap_or_else(|| NO_AGENCY.to_owned());
        let line = attendee(person);
        match groups.iter_mut().find(|(a, _)| *a == agency) {
            Some((_, people)) => people.push(line),
            None => groups.push((agency, vec![line])),
        }
    }
    groups.sort_by(|(a, _), (b, _)| {
        (a == NO_AGENCY)
            .cmp(&(b == NO_AGENCY))
            .then_with(|| swedish_key(a).cmp(&swedish_key(b)))
    });
    groups
}

fn attendee(person: &Person) -> String {
    if person.role == "member" {
        person.name.clone()
    } else {
        format!(
            "{}, {}",
            person.name,
            role_label(&person.role).to_lowercase()
        )
    }
}

/// A sort key in Swedish alphabetical order: å, ä and ö after z.
fn swedish_key(s: &str) -> Vec<u32> {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'å' => 'z' as u32 + 1,
            'ä' | 'æ' => 'z' as u32 + 2,
            'ö' | 'ø' => 'z' as u32 + 3,
            'é' | 'è' => 'e' as u32,
            'ü' => 'y' as u32,
            c => c as u32,
        })
        .collect()
}

/// "Rapport: Polis" under an item written by an agency or a named person;
/// nothing for the secretary's own items.
pub fn owner_line(item: &Item) -> Option<String> {
    if item.owner.is_empty() || item.owner == "Sekreterare" {
        None
    } else {
        Some(format!("Rapport: {}", item.owner))
    }
}

/// One closing line.
pub struct SealLine {
    pub label: String,
    pub value: String,
    /// The server's own value (a hex hash, a base64 signature), shown as
    /// code; otherwise text that may hold names.
    pub verbatim: bool,
}

/// The closing lines that tie a rendering to its stored protocol.
pub fn seal_lines(r: Rendition<'_>) -> Vec<SealLine> {
    let p = r.protocol;
    let line = |label: String, value: String, verbatim: bool| SealLine {
        label,
        value,
        verbatim,
    };
    let mut out = vec![
        line(
            "Protokollets kontrollsumma (SHA-256)".to_owned(),
            r.hash.to_owned(),
            true,
        ),
        line(
            "Låst".to_owned(),
            format!(
                "{} av {} (version {})",
                display_time(&p.locked_at),
                p.locked_by,
                p.version
            ),
            false,
        ),
    ];
    if let Some(v) = r.verification {
        out.push(line(
            "Justerat".to_owned(),
            display_time(&v.verified_at),
            false,
        ));
        out.push(line(
            format!("Serverns underskrift (Ed25519, nyckel {})", v.key_id),
            v.signature.clone(),
            true,
        ));
    }
    out
}

/// The line under the header that says what this document is.
pub fn status_line(r: Rendition<'_>) -> &'static str {
    if r.verification.is_some() {
        "Justerat"
    } else {
        "Låst för justering"
    }
}

/// Date heading for the PDF's running header.
pub fn header_date(p: &Protocol) -> String {
    p.meeting
        .date
        .as_deref()
        .map(swedish_date)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attendance_is_grouped_by_agency_in_swedish_order_with_roles() {
        let p = crate::testdata::small();
        let groups = attendance(&p);
        let names: Vec<&str> = groups.iter().map(|(a, _)| a.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|a| (*a == NO_AGENCY, swedish_key(a)));
        assert_eq!(names, sorted);
        assert!(groups.iter().all(|(_, people)| !people.is_empty()));
        assert_eq!(
            groups.iter().map(|(_, p)| p.len()).sum::<usize>(),
            p.participants.len()
        );
        assert!(swedish_key("Åklagare") > swedish_key("Zeta"));
        assert!(swedish_key("Äldreomsorg") > swedish_key("Åklagare"));
        assert!(swedish_key("Övriga") > swedish_key("Äldreomsorg"));
    }
}
