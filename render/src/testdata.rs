//! Protocols for the renderers' own tests.

use crate::model::*;

fn person(name: &str, role: &str, agency: Option<&str>) -> Person {
    Person {
        id: format!("id-{name}"),
        name: name.into(),
        role: role.into(),
        agency: agency.map(Into::into),
    }
}

fn text(s: &str) -> Inline {
    Inline::Text {
        text: s.into(),
        marks: vec![],
    }
}

pub fn small() -> Protocol {
    Protocol {
        format: FORMAT.into(),
        meeting: MeetingInfo {
            id: "00000000-0000-4000-8000-000000000001".into(),
            title: "Lokala Brå 2018-03-09".into(),
            body: "Lokala Brå Hägersten-Liljeholmen".into(),
            date: Some("2018-03-09".into()),
            time: Some("09:00".into()),
            place: "Telefonvägen 30".into(),
        },
        participants: vec![
            person("Ordföranden", "chair", None),
            person("Sekreteraren", "secretary", Some("Stadsdelsförvaltningen")),
            person("Justeraren", "justerare", Some("Socialtjänst")),
            person("Polisen", "member", Some("Polis")),
        ],
        agenda: vec![
            Item {
                id: "oppnande".into(),
                number: "1".into(),
                title: "Sammanträdets öppnande".into(),
                owner: "Sekreterare".into(),
                content: vec![Block::Paragraph {
                    content: vec![text("Sammanträdet öppnades.")],
                }],
            },
            Item {
                id: "polis".into(),
                number: "2.1".into(),
                title: "Polis".into(),
                owner: "Polis".into(),
                content: vec![
                    Block::Paragraph {
                        content: vec![
                            text("Inbrott "),
                            Inline::Text {
                                text: "ökar".into(),
                                marks: vec![Mark::Bold],
                            },
                            Inline::HardBreak,
                            text("i hela staden."),
                        ],
                    },
                    Block::BulletList {
                        content: vec![
                            ListItem {
                                content: vec![Block::Paragraph {
                                    content: vec![text("Västertorp den 14 mars")],
                                }],
                            },
                            ListItem {
                                content: vec![Block::Paragraph {
                                    content: vec![text("Fruängen den 22 mars")],
                                }],
                            },
                        ],
                    },
                ],
            },
        ],
        secretaries: vec![person(
            "Sekreteraren",
            "secretary",
            Some("Stadsdelsförvaltningen"),
        )],
        verifiers: vec![
            person("Ordföranden", "chair", None),
            person("Justeraren", "justerare", Some("Socialtjänst")),
        ],
        locked_at: "2018-03-12T14:05:09Z".into(),
        locked_by: "Sekreteraren".into(),
        version: 1,
    }
}

/// Text that would be markup in every output format.
pub fn hostile() -> Protocol {
    let mut p = small();
    p.meeting.title = "<script>alert(1)</script> #set page(width: 1pt) $x$ @ref".into();
    p.agenda[0].content = vec![Block::Paragraph {
        content: vec![
            text("<script>alert(1)</script><img src=x onerror=alert(2)> *fet* _kursiv_ #rubrik"),
            Inline::Text {
                text: "länk".into(),
                marks: vec![Mark::Link {
                    href: "https://example.se/?a=1&b=\"2\"".into(),
                }],
            },
        ],
    }];
    p
}
