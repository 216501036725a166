//! Demo data: a meeting modelled on the Hägersten-Liljeholmen lokala Brå
//! protocol of 9 March 2018 (`shared/seeds/`), so a newcomer has something
//! real to open. Idempotent: an existing demo meeting is reused.

use bytes::Bytes;
use yrs::{Doc, ReadTxn, StateVector, Transact};

use crate::{
    document::{SeedSection, seed},
    meeting::{Meeting, MeetingTitle},
    store::{AppendBatch, DynStore, StoreError},
};

pub const DEMO_TITLE: &str = "Lokala Brå Hägersten-Liljeholmen 2018-03-09";

const SECTIONS: &[SeedSection<'static>] = &[
    SeedSection {
        id: "oppnande",
        number: "1",
        title: "Sammanträdets öppnande",
        owner: "secretary",
        paragraphs: &[
            "Sammanträdet öppnades av mötesordförande, deltagarna presenterade sig, \
föregående protokoll lades till handlingarna och dagordningen godkändes.",
        ],
    },
    SeedSection {
        id: "information",
        number: "2",
        title: "Information",
        owner: "secretary",
        paragraphs: &["Lokal samverkansöverenskommelse mellan polis och kommun. \
Samverkansöverenskommelsen har reviderats och tas upp på stadsdelsnämnden 180315 som ett anmälningsärende."],
    },
    SeedSection {
        id: "polis",
        number: "2.1",
        title: "Polis",
        owner: "Polis",
        paragraphs: &[
            "Polisen får signaler från skolorna, både grundskolor men främst gymnasieskolor, \
att det är problem med droger, främst cannabis, bland ungdomar.",
        ],
    },
    SeedSection {
        id: "brand",
        number: "2.2",
        title: "Brand",
        owner: "Räddningstjänsten",
        paragraphs: &[
            "Det har varit en relativt lugn period sedan sensommaren, inga stora bränder, \
trafikolyckor eller bilbränder.",
        ],
    },
    SeedSection {
        id: "ung-fritid",
        number: "2.3",
        title: "Enheten för ung fritid",
        owner: "Stadsdelsförvaltningen",
        paragraphs: &[
            "Enheten har jobbat mycket med fritidsgårdarna, rekrytering, värdegrund och att \
bygga trygga personalgrupper.",
        ],
    },
    SeedSection {
        id: "skola",
        number: "2.4",
        title: "Skola",
        owner: "Skola",
        paragraphs: &[
            "Skolan ser behov av verksamhet för barn och ungdomar på eftermiddagar, efter \
skolans slut och innan barnen går hem till sina föräldrar.",
        ],
    },
    SeedSection {
        id: "aldreomsorg",
        number: "2.5",
        title: "Äldreomsorg",
        owner: "Äldreomsorg",
        paragraphs: &["Lugnt inom äldreomsorgen."],
    },
    SeedSection {
        id: "social-omsorg",
        number: "2.6",
        title: "Social omsorg",
        owner: "Socialtjänst",
        paragraphs: &[],
    },
    SeedSection {
        id: "forskola",
        number: "2.7",
        title: "Förskoleavdelningen",
        owner: "Förskola",
        paragraphs: &[
            "Stadsdelsområdet växer och det är mycket planering kring nya förskolor och byggnationer.",
        ],
    },
    SeedSection {
        id: "arbetsgrupper",
        number: "3",
        title: "Återrapportering från arbetsgrupper/uppföljning av prioriteringar",
        owner: "secretary",
        paragraphs: &[
            "Arbetsgruppen för tryggare och trivsammare centrum: möte med arbetsgruppen kommer att bokas inom kort.",
        ],
    },
    SeedSection {
        id: "ovriga-fragor",
        number: "4",
        title: "Övriga frågor",
        owner: "secretary",
        paragraphs: &[],
    },
    SeedSection {
        id: "prioriteringar",
        number: "5",
        title: "Prioriteringar utifrån problembild",
        owner: "secretary",
        paragraphs: &["Samverkansöverenskommelsen, revidera och arbeta utifrån prioriteringar."],
    },
    SeedSection {
        id: "motestider",
        number: "6",
        title: "Tid för möten 2018",
        owner: "secretary",
        paragraphs: &[
            "Plats: Besöksrum 1, plan 9, Telefonvägen 30",
            "Fredagen den 18 maj kl. 9-11",
            "Fredagen den 21 september kl. 9-11",
            "Fredagen den 7 december kl. 9-11",
        ],
    },
];

/// Returns the demo meeting, creating it (with its seeded document) if it
/// does not exist.
pub async fn ensure_demo(store: &DynStore) -> Result<Meeting, StoreError> {
    if let Some(existing) = store
        .list_meetings()
        .await?
        .into_iter()
        .find(|m| m.title.as_str() == DEMO_TITLE)
    {
        return Ok(existing);
    }
    let meeting = store
        .create_meeting(MeetingTitle::parse(DEMO_TITLE).expect("valid literal title"))
        .await?;
    let doc = Doc::new();
    seed(&doc, SECTIONS);
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    store
        .append_updates(&[AppendBatch {
            meeting: meeting.id,
            updates: vec![Bytes::from(state)],
        }])
        .await?;
    Ok(meeting)
}
