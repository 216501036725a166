//! The council fixture: one server, one meeting, the agencies and people of
//! a council (each person with an API token) and the sections they write, as
//! a `Plan` says; and the requests tests make on their behalf.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use protokoll::{
    auth::password,
    config::ServerConfig,
    meeting::Meeting,
    people::{AgencyId, NewPassword, Role, Section, SectionId, SectionOwner, User, Username},
    store::{Database, NewUser},
};

/// The password of every person a plan gives a display name.
pub const PASSWORD: &str = "ett långt lösenord";

/// One person of a council.
pub struct Person {
    /// The username, and the key of their token and user.
    pub who: &'static str,
    pub role: Option<Role>,
    /// The name of one of the plan's agencies.
    pub agency: Option<&'static str>,
    /// A display name and a password (`PASSWORD`); without one the person
    /// is "`who` (test)" and has no password.
    pub name: Option<&'static str>,
}

impl Person {
    pub const fn new(who: &'static str, role: Option<Role>) -> Self {
        Self {
            who,
            role,
            agency: None,
            name: None,
        }
    }

    pub const fn of(self, agency: &'static str) -> Self {
        Self {
            agency: Some(agency),
            ..self
        }
    }

    pub const fn named(self, name: &'static str) -> Self {
        Self {
            name: Some(name),
            ..self
        }
    }
}

/// One section of the meeting: id, number, title, and the agency that
/// writes it (the secretary, without one).
pub type SectionPlan = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// What a council is made of.
pub struct Plan {
    pub title: &'static str,
    /// Whether "scribe" is the secretary and the meeting has `TEST_SECTIONS`
    /// (see `writable_meeting`); the scribe's token is then "secretary".
    pub writable: bool,
    pub agencies: &'static [&'static str],
    pub sections: &'static [SectionPlan],
    pub people: &'static [Person],
}

/// A council: a server, its meeting, the people's tokens and users (the
/// server's administrator's token as "admin") and the agencies by name.
pub struct Council {
    pub server: TestServer,
    pub meeting: Meeting,
    pub tokens: HashMap<&'static str, String>,
    pub users: HashMap<&'static str, User>,
    pub agencies: HashMap<&'static str, AgencyId>,
    /// The database, where the council made it (`start`; dropped after the
    /// server).
    pub db: Option<TestDb>,
}

/// Creates a person with a display name and `PASSWORD`.
pub async fn password_user(
    db: &Database,
    username: &str,
    name: &str,
    agency: Option<AgencyId>,
) -> User {
    let hash = password::hash(NewPassword::parse(PASSWORD).unwrap())
        .await
        .unwrap();
    db.dir
        .create_user(NewUser {
            username: Username::parse(username).unwrap(),
            display_name: name.into(),
            agency,
            is_admin: false,
            password_hash: Some(hash),
            vouched_by: protokoll::people::Voucher::CommandLine,
        })
        .await
        .unwrap()
}

/// The sections of the police and the school, each writing its own.
pub const AGENCY_SECTIONS: &[SectionPlan] = &[
    ("polis", "2", "polis", Some("Polis")),
    ("skola", "2", "skola", Some("Skola")),
];

/// A member of the meeting from the police ("Polis").
pub const POLIS: Person = Person::new("polis", Some(Role::Member)).of("Polis");

/// A member of the meeting from the school ("Skola").
pub const SKOLA: Person = Person::new("skola", Some(Role::Member)).of("Skola");

impl Council {
    /// A council on a database of its own.
    pub async fn start(backend: Backend, config: ServerConfig, plan: &Plan) -> Self {
        let db = TestDb::new(backend).await;
        let mut council = Self::start_on(&db, config, plan).await;
        council.db = Some(db);
        council
    }

    /// A council on a database the test holds.
    pub async fn start_on(db: &TestDb, config: ServerConfig, plan: &Plan) -> Self {
        let server = TestServer::start_with(db, config).await;
        let dir = &server.db.dir;
        let mut agencies = HashMap::new();
        for name in plan.agencies {
            agencies.insert(*name, dir.create_agency(name).await.unwrap().id);
        }
        let mut tokens = HashMap::from([("admin", server.admin_token.clone())]);
        let meeting = if plan.writable {
            let (meeting, scribe) = writable_meeting(&server.db, plan.title).await;
            tokens.insert("secretary", scribe);
            meeting
        } else {
            create_meeting(&server.db, plan.title).await
        };
        for (id, number, title, agency) in plan.sections {
            let owner = match agency {
                Some(agency) => SectionOwner::Agency {
                    agency_id: agencies[agency],
                },
                None => SectionOwner::Secretary,
            };
            let section = Section {
                id: SectionId::parse(id).unwrap(),
                number: (*number).into(),
                title: (*title).into(),
                owner,
            };
            dir.add_section(meeting.id, &section).await.unwrap();
        }
        let mut users = HashMap::new();
        for person in plan.people {
            let agency = person.agency.map(|name| agencies[name]);
            let (user, token) = match person.name {
                Some(name) => {
                    password_user(&server.db, person.who, name, agency).await;
                    user_with_token(&server.db, person.who, false).await
                }
                None => agency_user_with_token(&server.db, person.who, false, agency).await,
            };
            if let Some(role) = person.role {
                dir.set_participant(meeting.id, user.id, role)
                    .await
                    .unwrap();
            }
            tokens.insert(person.who, token);
            users.insert(person.who, user);
        }
        Self {
            server,
            meeting,
            tokens,
            users,
            agencies,
            db: None,
        }
    }

    /// An HTTP client that signs in as `who` ("anonymous": no one).
    pub fn client(&self, who: &str) -> reqwest::Client {
        match who {
            "anonymous" => reqwest::Client::new(),
            _ => bearer_client(&self.tokens[who]),
        }
    }

    /// The URL of `path`, `{m}` standing for the meeting's id.
    pub fn url(&self, path: &str) -> String {
        self.server
            .http(&path.replace("{m}", &self.meeting.id.to_string()))
    }

    /// The meeting's document socket for `who` ("anonymous": no token).
    pub fn ws_url(&self, who: &str) -> String {
        match who {
            "anonymous" => format!("ws://{}/sync/{}", self.server.addr, self.meeting.id),
            _ => sync_url(self.server.addr, self.meeting.id, &self.tokens[who]),
        }
    }

    /// `who` connected to the meeting's document, synced.
    pub async fn ws(&self, who: &str) -> Client {
        Client::synced(self.server.addr, self.meeting.id, &self.tokens[who]).await
    }

    /// `GET path` as `who`: the response.
    pub async fn get_raw(&self, who: &str, path: &str) -> reqwest::Response {
        self.client(who).get(self.url(path)).send().await.unwrap()
    }

    /// `DELETE path` as `who`: the response.
    pub async fn delete_raw(&self, who: &str, path: &str) -> reqwest::Response {
        self.client(who)
            .delete(self.url(path))
            .send()
            .await
            .unwrap()
    }

    /// `who` removes `person` from the meeting: the response.
    pub async fn remove_participant(&self, who: &str, person: &str) -> reqwest::Response {
        let path = format!("/api/meetings/{{m}}/participants/{}", self.users[person].id);
        self.delete_raw(who, &path).await
    }

    /// Sends a request; its status and JSON body (`Null` without one).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, who: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client(who).post(self.url(path)).json(&body))
            .await
    }

    pub async fn get(&self, who: &str, path: &str) -> (StatusCode, Value) {
        self.send(self.client(who).get(self.url(path))).await
    }

    /// The body of `GET path` as `who`, which must answer 200.
    pub async fn bytes(&self, who: &str, path: &str) -> Vec<u8> {
        let response = self.get_raw(who, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.bytes().await.unwrap().to_vec()
    }

    /// Locks as the secretary, which must succeed; the answer.
    pub async fn lock_body(&self) -> Value {
        let (status, body) = self
            .post("secretary", "/api/meetings/{m}/protocol/lock", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Locks as the secretary and checks the state; the protocol's hash.
    pub async fn lock(&self) -> String {
        let body = self.lock_body().await;
        assert_eq!(body["state"], "locked");
        hash_of(&body)
    }

    pub async fn participant_count(&self) -> usize {
        self.server
            .db
            .dir
            .participants(self.meeting.id)
            .await
            .unwrap()
            .len()
    }
}

/// The protocol's hash in a lock's answer.
pub fn hash_of(locked: &Value) -> String {
    locked["locked"]["hash"].as_str().unwrap().to_owned()
}
