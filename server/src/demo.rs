//! Demo data: a council modelled on the Hägersten-Liljeholmen lokala Brå
//! protocol of 9 March 2018 (`shared/seeds/`): its agencies, one account per
//! agency and role, and the meeting with one section per agency under
//! Information, so a newcomer has something real to open. Idempotent: an
//! existing demo meeting is reused.

use crate::{
    auth::password,
    meeting::{Meeting, MeetingDetails, MeetingTitle},
    meetings::{Company, Creator, MeetingError, Meetings, NewMeeting},
    people::{NewPassword, Role, Section, SectionId, SectionOwner, Username, Voucher},
    store::{Database, NewUser, StoreError},
};

/// An agenda item of the demo meeting with its initial text. `owner` is an
/// agency name, or `secretary`.
struct SeedSection<'a> {
    id: &'a str,
    number: &'a str,
    title: &'a str,
    owner: &'a str,
    paragraphs: &'a [&'a str],
}

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
        paragraphs: &[
            "Lokal samverkansöverenskommelse mellan polis och kommun. \
Samverkansöverenskommelsen har reviderats och tas upp på stadsdelsnämnden 180315 som ett \
anmälningsärende. Stadsdelen Västertorp och ungdomar är två nya prioriterade områden i \
Hägersten-Liljeholmen. Inbrott och trafik tas bort som prioriterade områden men arbetet med \
problematiken fortsätter som tidigare inom ordinarie linjeverksamhet.",
            "Handlingsplan mot våldsbejakande extremism. Hägersten-Liljeholmens handlingsplan mot \
våldsbejakande extremism (VBE) ska revideras utifrån ny lägesbild och genomförda aktiviteter och \
ska vara klar till tertialrapport 1.",
            "Närmiljövandringar planeras i Västertorp den 14 mars kl. 18.00 och i Fruängen den \
22 mars kl. 18.00.",
        ],
    },
    SeedSection {
        id: "polis",
        number: "2.1",
        title: "Polis",
        owner: "Polis",
        paragraphs: &[
            "Polisen får signaler från skolorna, både grundskolor men främst gymnasieskolor, \
att det är problem med droger, främst cannabis, bland ungdomar. Polisen, \
stadsdelsförvaltningen och skolan ska tillsammans formulera en gemensam drogpolicy för \
samtliga grundskolor i stadsdelsområdet.",
            "Inbrott ökar i hela Stockholms stad och i Hägersten-Liljeholmen. Polisen jobbar med \
grannsamverkan och polisvolontärer kommer att gå ut och informera i utsatta områden mellan \
kl. 16.00 och 19.00 i vecka 9.",
        ],
    },
    SeedSection {
        id: "brand",
        number: "2.2",
        title: "Brand",
        owner: "Räddningstjänsten",
        paragraphs: &[
            "Det har varit en relativt lugn period sedan sensommaren, inga stora bränder, \
trafikolyckor eller bilbränder. Brandförsvarets brandinstruktörer informerar och utbildar på \
olika boenden. Det förekommer vissa brister i brandskyddet på de tillfälliga boendena då de \
inte är permanenta.",
        ],
    },
    SeedSection {
        id: "ung-fritid",
        number: "2.3",
        title: "Enheten för ung fritid",
        owner: "Stadsdelsförvaltningen",
        paragraphs: &[
            "Enheten har jobbat mycket med fritidsgårdarna, rekrytering, värdegrund och att \
bygga trygga personalgrupper. Fritidsgårdarna kommer att ha mer riktad verksamhet, och \
fältassistenternas uppdrag har utökats till att även gälla mellanstadiebarn.",
        ],
    },
    SeedSection {
        id: "skola",
        number: "2.4",
        title: "Skola",
        owner: "Skola",
        paragraphs: &[
            "Skolan ser behov av verksamhet för barn och ungdomar på eftermiddagar, efter \
skolans slut och innan barnen går hem till sina föräldrar. I övrigt finns inga avvikelser att \
rapportera från skolorna i området.",
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
        paragraphs: &["Ingen information."],
    },
    SeedSection {
        id: "forskola",
        number: "2.7",
        title: "Förskoleavdelningen",
        owner: "Förskola",
        paragraphs: &[
            "Stadsdelsområdet växer och det är mycket planering kring nya förskolor och \
byggnationer. Polisen vill gärna ha information så fort oroande situationer uppstår i \
anslutning till förskolor. I övrigt lugnt inom förskoleavdelningen.",
        ],
    },
    SeedSection {
        id: "arbetsgrupper",
        number: "3",
        title: "Återrapportering från arbetsgrupper/uppföljning av prioriteringar",
        owner: "secretary",
        paragraphs: &[
            "Arbetsgruppen för tryggare och trivsammare centrum: möte med arbetsgruppen kommer \
att bokas inom kort.",
            "SSP: samverkan kring de barn och ungdomar som skapar oro i Fruängen och Västertorp \
har fungerat bra och gett effekt. Överenskommet att det skapas en gemensam drogpolicy för \
skolorna i stadsdelen efter att förslaget har förankrats på lokala Brå.",
        ],
    },
    SeedSection {
        id: "ovriga-fragor",
        number: "4",
        title: "Övriga frågor",
        owner: "secretary",
        paragraphs: &["Inga övriga frågor."],
    },
    SeedSection {
        id: "prioriteringar",
        number: "5",
        title: "Prioriteringar utifrån problembild",
        owner: "secretary",
        paragraphs: &[
            "Samverkansöverenskommelsen, revidera och arbeta utifrån prioriteringar, formulera \
en gemensam drogpolicy för grundskolorna i stadsdelsområdet och ha möte med gymnasieskolorna \
för att hitta samverkansformer för att motverka droganvändande.",
        ],
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

/// The password of every demo account. Demo data is for trying Protokoll
/// out on a laptop, never for a deployment.
pub const DEMO_PASSWORD: &str = "demo-protokoll";

const AGENCIES: &[&str] = &[
    "Polis",
    "Räddningstjänsten",
    "Skola",
    "Socialtjänst",
    "Äldreomsorg",
    "Förskola",
    "Stadsdelsförvaltningen",
];

/// (username, display name, agency, role in the meeting, administrator).
/// The names are invented for the demo; none is a real person's.
type DemoPerson = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<Role>,
    bool,
);

const PEOPLE: &[DemoPerson] = &[
    ("admin", "Administratör", None, None, true),
    (
        "sekreterare",
        "Eva Lindqvist",
        Some("Stadsdelsförvaltningen"),
        Some(Role::Secretary),
        false,
    ),
    (
        "ordforande",
        "Anders Holm",
        Some("Stadsdelsförvaltningen"),
        Some(Role::Chair),
        false,
    ),
    (
        "justerare",
        "Maria Sundberg",
        Some("Socialtjänst"),
        Some(Role::Justerare),
        false,
    ),
    // A member who speaks for no agency: reads everything, writes nothing.
    ("ledamot", "Johan Ek", None, Some(Role::Member), false),
    (
        "polis",
        "Karin Sjöberg",
        Some("Polis"),
        Some(Role::Member),
        false,
    ),
    (
        "brand",
        "Erik Nyström",
        Some("Räddningstjänsten"),
        Some(Role::Member),
        false,
    ),
    (
        "skola",
        "Sara Lund",
        Some("Skola"),
        Some(Role::Member),
        false,
    ),
    (
        "social",
        "Ahmed Karimi",
        Some("Socialtjänst"),
        Some(Role::Member),
        false,
    ),
    (
        "aldreomsorg",
        "Birgitta Ström",
        Some("Äldreomsorg"),
        Some(Role::Member),
        false,
    ),
    (
        "forskola",
        "Lena Strand",
        Some("Förskola"),
        Some(Role::Member),
        false,
    ),
    (
        "utanfor",
        "Utomstående (demo, ej deltagare)",
        Some("Skola"),
        None,
        false,
    ),
];

/// Demo accounts an administrator has allowed to create meetings (the
/// administrator always may; the flag shows in `/api/me` all the same).
const MEETING_CREATORS: &[&str] = &["admin", "sekreterare"];

/// What `--demo` prints: how to sign in.
pub fn sign_in_help(meeting: &Meeting) -> String {
    let mut out = format!(
        "demo meeting: {} ({})\ndemo accounts (password \"{DEMO_PASSWORD}\"):\n",
        meeting.title.as_str(),
        meeting.id
    );
    for (username, name, _, role, admin) in PEOPLE {
        let what = match (role, admin) {
            (_, true) => "administrator".to_owned(),
            (Some(role), _) => role.as_str().to_owned(),
            (None, _) => "not in the meeting".to_owned(),
        };
        out.push_str(&format!("  {username:<12} {what:<20} {name}\n"));
    }
    out
}

/// Returns the demo meeting, creating the demo council (agencies, accounts,
/// the meeting with its agenda, participants and seeded text) if missing.
pub async fn ensure_demo(db: &Database) -> Result<Meeting, DemoError> {
    if let Some(existing) = db
        .dir
        .list_meetings(None)
        .await?
        .into_iter()
        .find(|m| m.title.as_str() == DEMO_TITLE)
    {
        grant_meeting_creators(db).await?;
        return Ok(existing);
    }
    let mut agencies = Vec::new();
    for name in AGENCIES {
        let agency = match db.dir.agency_by_name(name).await? {
            Some(a) => a,
            None => db.dir.create_agency(name).await?,
        };
        agencies.push(agency);
    }
    let agency_id = |name: &str| agencies.iter().find(|a| a.name == name).map(|a| a.id);
    let hash = password::hash(NewPassword::parse(DEMO_PASSWORD).expect("valid demo password"))
        .await
        .map_err(|_| DemoError::Hash)?;
    let mut people = Vec::new();
    for (username, name, agency, role, admin) in PEOPLE {
        let username = Username::parse(username).expect("valid demo username");
        let user = match db.dir.user_by_username(&username).await? {
            Some(u) => u,
            None => {
                db.dir
                    .create_user(NewUser {
                        username,
                        display_name: (*name).into(),
                        agency: agency.and_then(agency_id),
                        is_admin: *admin,
                        password_hash: Some(hash.clone()),
                        vouched_by: Voucher::Demo,
                    })
                    .await?
            }
        };
        if let Some(role) = role {
            people.push((user, *role));
        }
    }
    let creator = Creator::operator();
    let sections = SECTIONS
        .iter()
        .map(|s| {
            let owner = match agency_id(s.owner) {
                Some(agency_id) => SectionOwner::Agency { agency_id },
                None => SectionOwner::Secretary,
            };
            let section = Section {
                id: SectionId::parse(s.id).expect("valid demo section id"),
                number: s.number.into(),
                title: s.title.into(),
                owner,
            };
            (section, s.paragraphs)
        })
        .collect();
    let new = NewMeeting {
        title: MeetingTitle::parse(DEMO_TITLE).expect("valid literal title"),
        details: MeetingDetails {
            body: "Lokala Brå Hägersten-Liljeholmen".into(),
            date: Some("2018-03-09".into()),
            time: Some("09:00".into()),
            place: "Besöksrum 1, plan 9, Telefonvägen 30".into(),
        },
        company: Company::gather(&creator, people)?,
        agenda: Some(sections),
    };
    let meeting = Meetings::offline(db).create(&creator, new).await?;
    grant_meeting_creators(db).await?;
    Ok(meeting)
}

/// Demo councils made before meeting creation needed the right get it too.
async fn grant_meeting_creators(db: &Database) -> Result<(), StoreError> {
    for name in MEETING_CREATORS {
        let username = Username::parse(name).expect("valid demo username");
        if let Some(user) = db.dir.user_by_username(&username).await? {
            db.dir.set_can_create_meetings(user.id, true).await?;
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Meeting(#[from] MeetingError),
    #[error("could not hash the demo password")]
    Hash,
}
