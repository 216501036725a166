//! People, sign-in and meetings: who may open what, over real sockets.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::{fixture::*, helpers::*};
use protokoll::{
    config::ServerConfig,
    people::{NewPassword, Role, User, Username},
    store::NewUser,
};

const ROLES: [&str; 7] = [
    "admin",
    "secretary",
    "chair",
    "justerare",
    "member",
    "outsider",
    "anonymous",
];

/// A council: agencies, one user per meeting role plus an outsider (not in
/// the meeting), each with an API token; the Polis agency writes "polis".
const PLAN: Plan = Plan {
    title: "Lokala Brå",
    writable: false,
    agencies: &["Polis", "Skola"],
    sections: &[("polis", "2.1", "Polis", Some("Polis"))],
    people: &[
        Person::new("secretary", Some(Role::Secretary)),
        Person::new("chair", Some(Role::Chair)),
        Person::new("justerare", Some(Role::Justerare)),
        Person::new("member", Some(Role::Member)),
        Person::new("outsider", None),
    ],
};

async fn council(backend: Backend, config: ServerConfig) -> Council {
    Council::start(backend, config, &PLAN).await
}

fn status_of(result: Result<Client, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected WebSocket error {e}"),
    }
}

/// Every role against every kind of resource: allowed and refused.
async fn permission_matrix_holds_for_every_role_and_resource(backend: Backend) {
    let c = council(backend, test_config()).await;
    //                      admin secretary chair justerare member outsider anonymous
    let expected: [(&str, [u16; 7]); 6] = [
        (
            "document over WebSocket",
            [101, 101, 101, 101, 101, 404, 401],
        ),
        ("GET agenda", [200, 200, 200, 200, 200, 404, 401]),
        ("POST agenda", [201, 201, 403, 403, 403, 404, 401]),
        ("GET meeting", [200, 200, 200, 200, 200, 404, 401]),
        ("GET admin users", [200, 403, 403, 403, 403, 403, 401]),
        ("POST admin agencies", [201, 403, 403, 403, 403, 403, 401]),
    ];
    for (resource, statuses) in expected {
        for (who, want) in ROLES.iter().zip(statuses) {
            let http = c.client(who);
            let got = match resource {
                "document over WebSocket" => status_of(Client::try_connect(&c.ws_url(who)).await),
                "GET agenda" => http.get(c.url("/api/meetings/{m}/agenda")).send().await.unwrap().status().as_u16(),
                "POST agenda" => http
                    .post(c.url("/api/meetings/{m}/agenda"))
                    .json(&json!({ "id": format!("by-{who}"), "title": "Övriga frågor", "owner": { "kind": "secretary" } }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
                "GET meeting" => http.get(c.url("/api/meetings/{m}")).send().await.unwrap().status().as_u16(),
                "GET admin users" => http.get(c.url("/api/admin/users")).send().await.unwrap().status().as_u16(),
                "POST admin agencies" => http
                    .post(c.url("/api/admin/agencies"))
                    .json(&json!({ "name": format!("Byrå {who}") }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
                _ => unreachable!(),
            };
            assert_eq!(got, want, "{resource} as {who}");
        }
    }
    // Meeting lists show only one's own meetings.
    for (who, sees) in [("member", 1), ("outsider", 0), ("admin", 1)] {
        let list: Value = c.get_raw(who, "/api/meetings").await.json().await.unwrap();
        assert_eq!(list.as_array().unwrap().len(), sees, "{who}'s meeting list");
    }
    c.server.stop().await;
}

async fn create_password_user(c: &Council, username: &str, password: &str) -> User {
    let hash = protokoll::auth::password::hash(NewPassword::parse(password).unwrap())
        .await
        .unwrap();
    let user = c
        .server
        .db
        .dir
        .create_user(NewUser {
            username: Username::parse(username).unwrap(),
            display_name: "Anna Andersson".into(),
            agency: Some(c.agencies["Polis"]),
            is_admin: false,
            password_hash: Some(hash),
            vouched_by: protokoll::people::Voucher::CommandLine,
        })
        .await
        .unwrap();
    c.server
        .db
        .dir
        .set_participant(c.meeting.id, user.id, Role::Member)
        .await
        .unwrap();
    user
}

/// Signs in; returns the session cookie (`name=value`) and its attributes.
async fn login(c: &Council, username: &str, password: &str) -> (StatusCode, Option<String>) {
    let response = reqwest::Client::new()
        .post(c.url("/api/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), cookie)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn ws_request(
    c: &Council,
    cookie: &str,
    origin: Option<&str>,
) -> tungstenite::handshake::client::Request {
    let mut request = format!("ws://{}/sync/{}", c.server.addr, c.meeting.id)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

async fn password_sign_in_sets_a_safe_cookie_and_websockets_check_the_origin(backend: Backend) {
    let c = council(backend, test_config()).await;
    let user = create_password_user(&c, "anna", "ett långt lösenord").await;
    let stored = c
        .server
        .db
        .dir
        .credentials(&user.username)
        .await
        .unwrap()
        .unwrap()
        .1
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$"),
        "stored as an Argon2id hash"
    );

    let (status, _) = login(&c, "anna", "fel lösenord!!").await;
    assert_eq!(status, 401);
    let (status, cookie) = login(&c, "Anna", "ett långt lösenord").await;
    assert_eq!(status, 200);
    let set_cookie = cookie.expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    let cookie = cookie_pair(&set_cookie);

    let me: Value = reqwest::Client::new()
        .get(c.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "anna");

    let own_origin = format!("http://{}", c.server.addr);
    for (origin, want) in [
        (Some("http://evil.example"), 403),
        (Some("https://127.0.0.1.evil.example"), 403),
        (Some(own_origin.as_str()), 101),
        (None, 101),
    ] {
        let got = status_of(Client::try_connect_request(ws_request(&c, &cookie, origin)).await);
        assert_eq!(got, want, "cookie WebSocket from origin {origin:?}");
    }
    // A cross-site POST riding on the cookie is refused too.
    let forged = reqwest::Client::new()
        .post(c.url("/api/me/tokens"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&json!({ "name": "stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Tokens are not ambient: no origin check.
    let mut request = c.ws_url("member").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert_eq!(status_of(Client::try_connect_request(request).await), 101);

    // Signing out ends the session and its connections.
    let mut open = Client::try_connect_request(ws_request(&c, &cookie, None))
        .await
        .unwrap();
    open.until("synced", |cl| cl.synced).await;
    let out = reqwest::Client::new()
        .post(c.url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(open.closed_by_server().await.0, 4401);
    let after = reqwest::Client::new()
        .get(c.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    c.server.stop().await;
}

async fn repeated_failed_sign_ins_are_throttled(backend: Backend) {
    let c = council(backend, test_config()).await;
    create_password_user(&c, "anna", "ett långt lösenord").await;
    for _ in 0..protokoll::auth::throttle::MAX_FAILURES {
        assert_eq!(login(&c, "anna", "gissning gissning").await.0, 401);
    }
    let response = reqwest::Client::new()
        .post(c.url("/api/login"))
        .json(&json!({ "username": "anna", "password": "ett långt lösenord" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "even the right password waits");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    c.server.stop().await;
}

async fn an_expired_session_stops_working_at_once_including_open_connections(backend: Backend) {
    let c = council(
        backend,
        ServerConfig {
            session_ttl_secs: 3,
            ..test_config()
        },
    )
    .await;
    create_password_user(&c, "anna", "ett långt lösenord").await;
    let (_, set_cookie) = login(&c, "anna", "ett långt lösenord").await;
    let cookie = cookie_pair(&set_cookie.unwrap());
    let mut open = Client::try_connect_request(ws_request(&c, &cookie, None))
        .await
        .unwrap();
    open.until("synced", |cl| cl.synced).await;
    // The server closes the connection when the session runs out.
    let (code, reason) = open.closed_by_server().await;
    assert_eq!((code, reason.as_str()), (4401, "session expired"));
    let after = reqwest::Client::new()
        .get(c.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_expired");
    assert_eq!(
        status_of(Client::try_connect_request(ws_request(&c, &cookie, None)).await),
        401
    );
    c.server.stop().await;
}

async fn a_revoked_token_stops_working_at_once_including_open_connections(backend: Backend) {
    let c = council(backend, test_config()).await;
    let member = c.client("member");
    let issued: Value = member
        .post(c.url("/api/me/tokens"))
        .json(&json!({ "name": "script" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = issued["secret"].as_str().unwrap().to_owned();
    let id = issued["token"]["id"].as_str().unwrap().to_owned();
    let mut open = Client::synced(c.server.addr, c.meeting.id, &secret).await;

    let revoked = member
        .delete(c.url(&format!("/api/me/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(open.closed_by_server().await.0, 4401);
    let after = bearer_client(&secret)
        .get(c.url("/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(
        status_of(Client::try_connect(&sync_url(c.server.addr, c.meeting.id, &secret)).await),
        401
    );
    // Someone else's token cannot be revoked by a non-administrator.
    let other: Value = c
        .client("chair")
        .post(c.url("/api/me/tokens"))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_id = other["token"]["id"].as_str().unwrap();
    let refused = member
        .delete(c.url(&format!("/api/me/tokens/{other_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    c.server.stop().await;
}

async fn a_removed_participant_is_disconnected_and_refused(backend: Backend) {
    let c = council(backend, test_config()).await;
    let mut member = c.ws("member").await;
    let refused = c.remove_participant("chair", "member").await;
    assert_eq!(
        refused.status(),
        403,
        "only the secretary manages participants"
    );
    let removed = c.remove_participant("secretary", "member").await;
    assert_eq!(removed.status(), 204);
    let (code, reason) = member.closed_by_server().await;
    assert_eq!((code, reason.as_str()), (4403, "removed from the meeting"));
    assert_eq!(
        status_of(Client::try_connect(&c.ws_url("member")).await),
        404
    );
    let api = c.get_raw("member", "/api/meetings/{m}").await;
    assert_eq!(api.status(), 404);
    c.server.stop().await;
}

fn agenda_of(client: &Client) -> Vec<(String, String, String)> {
    use yrs::{Array, Map, Out, ReadTxn, Transact};
    let txn = client.doc.transact();
    let Some(agenda) = txn.get_array("agenda") else {
        return vec![];
    };
    agenda
        .iter(&txn)
        .filter_map(|item| match item {
            Out::YMap(map) => {
                let get = |k: &str| {
                    map.get(&txn, k)
                        .map(|v| v.to_string(&txn))
                        .unwrap_or_default()
                };
                Some((get("id"), get("title"), get("owner")))
            }
            _ => None,
        })
        .collect()
}

async fn agenda_changes_reach_connected_clients_live(backend: Backend) {
    let c = council(backend, test_config()).await;
    let mut member = c.ws("member").await;
    let secretary = c.client("secretary");
    let added = secretary
        .post(c.url("/api/meetings/{m}/agenda"))
        .json(&json!({ "title": "Skola", "owner": { "kind": "agency", "agency_id": c.agencies["Polis"] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    member
        .until("the new section", |cl| agenda_of(cl).len() == 2)
        .await;
    assert_eq!(agenda_of(&member)[1].0, "skola");

    let renamed = secretary
        .patch(c.url("/api/meetings/{m}/agenda/skola"))
        .json(&json!({ "title": "Skolan", "owner": { "kind": "secretary" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    member
        .until("the renamed section", |cl| {
            agenda_of(cl)
                .get(1)
                .is_some_and(|s| s.1 == "Skolan" && s.2 == "secretary")
        })
        .await;

    let reordered = secretary
        .put(c.url("/api/meetings/{m}/agenda/order"))
        .json(&json!({ "sections": ["skola", "polis"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(reordered.status(), 200);
    member
        .until("the new order", |cl| {
            agenda_of(cl).first().is_some_and(|s| s.0 == "skola")
        })
        .await;
    let bad = secretary
        .put(c.url("/api/meetings/{m}/agenda/order"))
        .json(&json!({ "sections": ["skola"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422, "every section must be named");
    let agenda: Value = c
        .get_raw("member", "/api/meetings/{m}/agenda")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(agenda[0]["id"], "skola");
    assert_eq!(agenda[1]["id"], "polis");
    c.server.stop().await;
}

async fn presence_carries_the_signed_in_identity_and_cannot_be_forged(backend: Backend) {
    let c = council(backend, test_config()).await;
    let mut watcher = c.ws("chair").await;
    let mut member = c.ws("member").await;
    let mut forger = c.ws("justerare").await;
    let member_id = member.client_id();
    member
        .set_presence(r##"{"user":{"name":"Ordförande","color":"#ff0000"},"cursor":1}"##)
        .await;
    watcher
        .until("member's presence", |w| w.presence.contains_key(&member_id))
        .await;
    let state: Value = serde_json::from_str(&watcher.presence[&member_id]).unwrap();
    assert_eq!(
        state["user"]["name"], "member (test)",
        "the claimed name is replaced"
    );
    assert_eq!(state["user"]["id"], c.users["member"].id.to_string());
    assert_eq!(state["user"]["color"], "#ff0000");
    assert_eq!(state["cursor"], 1);

    // The forger speaks for the member's client id: ignored. Its own
    // presence, sent after, arrives: so the forgery had its chance.
    forger
        .set_presence_for(member_id, 2, r#"{"user":{"name":"member"}}"#)
        .await;
    forger.set_presence(r#"{}"#).await;
    let forger_id = forger.client_id();
    watcher
        .until("forger's own presence", |w| {
            w.presence.contains_key(&forger_id)
        })
        .await;
    let state: Value = serde_json::from_str(&watcher.presence[&member_id]).unwrap();
    assert_eq!(state["cursor"], 1, "the member's presence is untouched");
    c.server.stop().await;
}

async fn an_invitation_lets_a_newcomer_set_a_password_once(backend: Backend) {
    let c = council(backend, test_config()).await;
    let issued = c
        .client("secretary")
        .post(c.url("/api/meetings/{m}/invitations"))
        .json(
            &json!({ "username": "brand.berit", "display_name": "Berit Brand", "role": "member" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.unwrap();
    let secret = issued["secret"].as_str().unwrap();
    let refused = c
        .client("member")
        .post(c.url("/api/meetings/{m}/invitations"))
        .json(&json!({ "username": "x.y", "display_name": "X", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let http = reqwest::Client::new();
    let shown: Value = get_json(&http, c.url(&format!("/api/invitations/{secret}"))).await;
    assert_eq!(shown["display_name"], "Berit Brand");
    let weak = http
        .post(c.url(&format!("/api/invitations/{secret}/accept")))
        .json(&json!({ "password": "kort" }))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 422);
    let accepted = http
        .post(c.url(&format!("/api/invitations/{secret}/accept")))
        .json(&json!({ "password": "berits eget lösenord" }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let cookie = cookie_pair(accepted.headers()["set-cookie"].to_str().unwrap());
    let again = http
        .post(c.url(&format!("/api/invitations/{secret}/accept")))
        .json(&json!({ "password": "berits eget lösenord" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "one use only");
    let mut berit = Client::try_connect_request(ws_request(&c, &cookie, None))
        .await
        .unwrap();
    berit.until("synced", |cl| cl.synced).await;
    assert_eq!(
        login(&c, "brand.berit", "berits eget lösenord").await.0,
        200
    );
    c.server.stop().await;
}

async fn the_api_is_described_as_openapi(backend: Backend) {
    let c = council(backend, test_config()).await;
    let doc: Value = reqwest::get(c.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/login",
        "/api/meetings/{id}/agenda",
        "/api/admin/users",
        "/api/invitations/{secret}/accept",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    c.server.stop().await;
}

crate::on_both_backends!(
    permission_matrix_holds_for_every_role_and_resource,
    password_sign_in_sets_a_safe_cookie_and_websockets_check_the_origin,
    repeated_failed_sign_ins_are_throttled,
    an_expired_session_stops_working_at_once_including_open_connections,
    a_revoked_token_stops_working_at_once_including_open_connections,
    a_removed_participant_is_disconnected_and_refused,
    agenda_changes_reach_connected_clients_live,
    presence_carries_the_signed_in_identity_and_cannot_be_forged,
    an_invitation_lets_a_newcomer_set_a_password_once,
    the_api_is_described_as_openapi,
);
