//! Accounts, sign-offs and the signing key (issue 24, findings 5, 8, 9 and
//! 10), tried as the attacks they are, on both backends: a secretary who
//! invites look-alikes of the chair and the justerare and signs off as
//! them; names that read the same; an invitation accepted after the lock;
//! the command line writing a second private key; rejection reasons with
//! bidirectional controls.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{fixture::*, helpers::*};
use protokoll::{
    config::ServerConfig,
    people::{Role, Username},
    store::StoreError,
};

/// A council: a (non-admin) secretary, the real chair "Anders Holm" and
/// justerare "Maria Sundberg", a member; each with an API token; one
/// section, so that the protocol can be locked.
const PLAN: Plan = Plan {
    title: "Lokala Brå 2018-03-09",
    writable: false,
    agencies: &[],
    sections: &[("oppnande", "1", "Mötets öppnande", None)],
    people: &[
        Person::new("secretary", Some(Role::Secretary)).named("Eva Lindqvist"),
        Person::new("chair", Some(Role::Chair)).named("Anders Holm"),
        Person::new("justerare", Some(Role::Justerare)).named("Maria Sundberg"),
        Person::new("member", Some(Role::Member)).named("Johan Ek"),
    ],
};

impl Council {
    /// Invites as `who`.
    async fn invite(
        &self,
        who: &str,
        username: &str,
        name: &str,
        role: &str,
    ) -> (StatusCode, Value) {
        self.post(
            who,
            "/api/meetings/{m}/invitations",
            json!({ "username": username, "display_name": name, "role": role }),
        )
        .await
    }

    /// Accepts an invitation; the session cookie, if it was accepted.
    async fn accept(&self, secret: &str) -> (StatusCode, Value, Option<String>) {
        let response = reqwest::Client::new()
            .post(self.url(&format!("/api/invitations/{secret}/accept")))
            .json(&json!({ "password": "inbjudans eget lösenord" }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        (status, response.json().await.unwrap_or(Value::Null), cookie)
    }
}

/// A client that sends a session cookie (a person signed in with their
/// password, in a browser).
fn cookie_client(cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

// ---- finding 5: the secretary alone cannot produce a verified protocol ----------------

async fn a_secretary_cannot_sign_off_through_accounts_of_their_own_invitation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    // The attack: remove the real chair and justerare, invite two new
    // accounts under their names, accept the links, lock, sign off as both.
    for who in ["chair", "justerare"] {
        let response = c
            .delete_raw(
                "secretary",
                &format!("/api/meetings/{{m}}/participants/{}", c.users[who].id),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let mut fakes = Vec::new();
    for (username, name, role) in [
        ("anders.holm", "Anders Holm", "chair"),
        ("maria.sundberg", "Maria Sundberg", "justerare"),
    ] {
        let (status, invitation) = c.invite("secretary", username, name, role).await;
        assert_eq!(status, StatusCode::CREATED, "{invitation}");
        let (status, me, cookie) = c.accept(invitation["secret"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{me}");
        assert_eq!(
            me["confirmed"], false,
            "an invited account is not vouched for: {me}"
        );
        fakes.push((
            me["id"].as_str().unwrap().to_owned(),
            cookie_client(&cookie.unwrap()),
        ));
    }
    let hash = hash_of(&c.lock_body().await);
    // The secretary's console sees that the signers are unconfirmed.
    let (_, view) = c.get("secretary", "/api/meetings/{m}/protocol").await;
    for required in view["locked"]["required"].as_array().unwrap() {
        assert_eq!(required["account_confirmed"], false, "{required}");
    }
    for (_, fake) in &fakes {
        for (path, body) in [
            ("/api/meetings/{m}/signoffs", json!({ "hash": hash })),
            (
                "/api/meetings/{m}/protocol/reject",
                json!({ "hash": hash, "reason": "Fel" }),
            ),
        ] {
            let (status, body) = c.send(fake.post(c.url(path)).json(&body)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("administrator must confirm your account"),
                "{body}"
            );
        }
    }
    let (_, view) = c.get("secretary", "/api/meetings/{m}/protocol").await;
    assert_eq!(view["state"], "locked", "nothing was signed: {view}");
    let (_, report) = c.get("member", &format!("/api/verify/{hash}")).await;
    assert_eq!(report["protocol"]["state"], "locked");
    assert!(report["protocol"]["signature"].is_null());
    let (_, audit) = c.get("member", "/api/meetings/{m}/audit").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["lock"]);

    // Only an administrator can vouch for them (audited); then they may
    // sign, and the signature names who they are.
    let (fake_chair, chair_client) = &fakes[0];
    let (status, _) = c
        .post(
            "secretary",
            &format!("/api/admin/users/{fake_chair}/confirm"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (id, _) in &fakes {
        let (status, user) = c
            .post(
                "admin",
                &format!("/api/admin/users/{id}/confirm"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["confirmed"], true);
        assert_eq!(user["vouched"]["via"], "api");
        assert_eq!(user["vouched"]["by"]["username"], "admin");
    }
    let (status, _) = c
        .post(
            "admin",
            &format!("/api/admin/users/{fake_chair}/confirm"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "confirmed once");
    let (_, audit) = c
        .get("admin", &format!("/api/admin/users/{fake_chair}/audit"))
        .await;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("accept_invitation", "Anders Holm"),
            ("confirm", "admin (test)")
        ]
    );
    let (status, _) = c
        .send(
            chair_client
                .post(c.url("/api/meetings/{m}/signoffs"))
                .json(&json!({ "hash": hash })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, view) = c
        .send(
            fakes[1]
                .1
                .post(c.url("/api/meetings/{m}/signoffs"))
                .json(&json!({ "hash": hash })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "verified");

    // `/verify` (JSON and the page) and the signed record name the
    // accounts, how they signed in and who vouched for them.
    let (_, report) = c.get("member", &format!("/api/verify/{hash}")).await;
    assert_eq!(report["protocol"]["signature"]["valid"], true, "{report}");
    let required = report["protocol"]["required"].as_array().unwrap();
    assert_eq!(required[0]["signed_by"]["username"], "anders.holm");
    assert_eq!(required[1]["signed_by"]["username"], "maria.sundberg");
    for r in required {
        assert_eq!(
            r["signed_by"]["signed_in_with"]["method"], "password",
            "{r}"
        );
        assert_eq!(r["signed_by"]["vouched_by"]["by"]["username"], "admin");
        assert!(r.get("account_confirmed").is_none(), "not on /verify: {r}");
    }
    let record: Value =
        serde_json::from_str(report["protocol"]["signature"]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["format"], "protokoll-signature/2");
    assert_eq!(record["signoffs"][0]["username"], "anders.holm");
    assert_eq!(
        record["signoffs"][0]["signed_in_with"]["method"],
        "password"
    );
    assert_eq!(record["signoffs"][1]["vouched_by"]["via"], "api");
    let page = reqwest::get(c.url(&format!("/verify?hash={hash}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("konto anders.holm"), "{page}");
    assert!(page.contains("inloggad med lösenord"), "{page}");
    assert!(
        page.contains("intygad av administratören admin (test) (admin)"),
        "{page}"
    );
    c.server.stop().await;
}

async fn sign_offs_with_a_token_or_from_the_command_line_say_so(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let hash = hash_of(&c.lock_body().await);
    let (status, _) = c
        .post(
            "chair",
            "/api/meetings/{m}/signoffs",
            json!({ "hash": hash }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.server.stop().await;
    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "signoff",
            &c.meeting.id.to_string(),
            "--as",
            "justerare",
            "--hash",
            &hash,
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, status, err) = cli(&db, &["meeting", "status", &c.meeting.id.to_string()], None);
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&status).unwrap();
    let required = status["locked"]["required"].as_array().unwrap();
    assert_eq!(
        required[0]["signed_by"]["signed_in_with"]["method"],
        "api_token"
    );
    assert!(required[0]["signed_by"]["signed_in_with"]["token_id"].is_string());
    assert_eq!(
        required[1]["signed_by"]["signed_in_with"]["method"],
        "command_line"
    );
    assert_eq!(required[1]["signed_by"]["vouched_by"]["via"], "cli");
    assert_eq!(status["state"], "verified");
}

async fn two_participants_of_one_meeting_cannot_share_a_name(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    // Invitations that would bring a second "Anders Holm" in.
    for name in [
        "Anders Holm",
        "anders  HOLM",
        "ＡＮＤＥＲＳ ＨＯＬＭ",
        "Аnders Holm",
        "Anders Hol\u{200c}m",
    ] {
        let (status, body) = c.invite("secretary", "anders2", name, "member").await;
        assert_eq!(status, StatusCode::CONFLICT, "{name:?}: {body}");
    }
    // Accounts the administrator made, added by the secretary.
    for (username, name) in [("holm2", "ANDERS HOLM"), ("holm3", "Аnders Ноlm")] {
        let (status, user) = c
            .post(
                "admin",
                "/api/admin/users",
                json!({ "username": username, "display_name": name, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let response = c
            .client("secretary")
            .put(c.url(&format!(
                "/api/meetings/{{m}}/participants/{}",
                user["id"].as_str().unwrap()
            )))
            .json(&json!({ "role": "member" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT, "{name:?}");
    }
    // An invitation made while the name was free, accepted once it is not.
    let response = c.remove_participant("secretary", "chair").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, invitation) = c
        .invite("secretary", "anders.holm", "Anders Holm", "chair")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = c
        .client("secretary")
        .put(c.url(&format!(
            "/api/meetings/{{m}}/participants/{}",
            c.users["chair"].id
        )))
        .json(&json!({ "role": "chair" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let before = c.participant_count().await;
    let (status, body, _) = c.accept(invitation["secret"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(c.participant_count().await, before);
    assert!(
        c.server
            .db
            .dir
            .user_by_username(&Username::parse("anders.holm").unwrap())
            .await
            .unwrap()
            .is_none(),
        "no account was made"
    );
    // Changing a participant's role is no newcomer: still allowed.
    let response = c
        .client("secretary")
        .put(c.url(&format!(
            "/api/meetings/{{m}}/participants/{}",
            c.users["chair"].id
        )))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    c.server.stop().await;

    // The command line refuses it too, and creates nothing.
    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "create",
            "Möte",
            "--participant",
            "chair=chair",
            "--participant",
            "holm2=member",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("reads the same"), "{err}");
    let database = db.database().await;
    assert_eq!(database.dir.list_meetings(None).await.unwrap().len(), 1);
    database.close().await;
}

// ---- finding 9: nothing joins a locked meeting -----------------------------------------

async fn an_invitation_accepted_after_the_lock_adds_nobody(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let (status, invitation) = c
        .invite("secretary", "nykomling", "Ny Kommling", "member")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = invitation["secret"].as_str().unwrap().to_owned();
    c.lock_body().await;
    let before = c.participant_count().await;

    let (status, body, cookie) = c.accept(&secret).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(cookie.is_none());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{body}"
    );
    assert_eq!(c.participant_count().await, before);
    assert!(
        c.server
            .db
            .dir
            .user_by_username(&Username::parse("nykomling").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // Nor can invitations or participants change through the API...
    let (status, _) = c
        .invite("secretary", "annan", "Annan Person", "member")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c.invite("admin", "annan", "Annan Person", "member").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let response = c
        .client("secretary")
        .put(c.url(&format!(
            "/api/meetings/{{m}}/participants/{}",
            c.users["member"].id
        )))
        .json(&json!({ "role": "justerare" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = c.remove_participant("admin", "member").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // ...nor through the store (the command line and the demo go through
    // it), nor in SQL: the database refuses.
    let outsider = user_with_token(&c.server.db, "outsider", false).await.0;
    let refused = c
        .server
        .db
        .dir
        .set_participant(c.meeting.id, outsider.id, Role::Member)
        .await;
    assert!(matches!(refused, Err(StoreError::Locked)), "{refused:?}");
    let sql = crate::with_pool!(backend, &db.url, |pool| {
        let r = sqlx::query(
            "INSERT INTO participants (meeting_id, user_id, role) VALUES ($1, $2, 'member')",
        )
        .bind(c.meeting.id.as_uuid())
        .bind(outsider.id.0)
        .execute(&pool)
        .await;
        let d = sqlx::query("DELETE FROM participants WHERE meeting_id = $1")
            .bind(c.meeting.id.as_uuid())
            .execute(&pool)
            .await;
        pool.close().await;
        (r.is_err(), d.is_err())
    });
    assert_eq!(sql, (true, true), "the database refuses both");
    assert_eq!(c.participant_count().await, before);
    // The invitation was not used up: once the protocol is a draft again,
    // it works.
    let (_, pending) = c.get("secretary", "/api/meetings/{m}/invitations").await;
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    let (status, _) = c
        .post("secretary", "/api/meetings/{m}/protocol/reopen", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = c.accept(&secret).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(c.participant_count().await, before + 1);
    c.server.stop().await;
}

// ---- finding 10: one rule for human-readable text ----------------------------------------

async fn a_rejection_reason_follows_the_text_rule_and_keeps_its_line_breaks(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let hash = hash_of(&c.lock_body().await);
    for bad in [
        "§ 3 saknas\u{202e}tgiläv",
        "Fel \u{2066}dold\u{2069}",
        "rad\u{2028}två",
        "osynligt\u{200b}ord",
        "tab\tbar",
        "\u{e0041}tagg",
    ] {
        let (status, body) = c
            .post(
                "justerare",
                "/api/meetings/{m}/protocol/reject",
                json!({ "hash": hash, "reason": bad }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bidirectional")
        );
    }
    c.server.stop().await;
    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "reject",
            &c.meeting.id.to_string(),
            "--as",
            "chair",
            "--hash",
            &hash,
            "--reason",
            "§ 3 saknas\u{202e}tgiläv",
        ],
        None,
    );
    assert!(!ok, "the command line refuses it too");
    assert!(err.contains("bidirectional"), "{err}");
    let database = db.database().await;
    let audit = database.protocols.audit(c.meeting.id).await.unwrap();
    assert_eq!(audit.len(), 1, "only the lock: {audit:?}");
    // Line breaks belong in a reason (stored as plain line feeds).
    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "reject",
            &c.meeting.id.to_string(),
            "--as",
            "chair",
            "--hash",
            &hash,
            "--reason",
            "§ 3 saknas.\r\n§ 4 är fel.\r",
        ],
        None,
    );
    assert!(ok, "{err}");
    let audit = database.protocols.audit(c.meeting.id).await.unwrap();
    assert_eq!(audit[1].reason.as_deref(), Some("§ 3 saknas.\n§ 4 är fel."));
    database.close().await;
}

// ---- finding 8: the signing key ------------------------------------------------------------

fn key_count(db: &TestDb) -> usize {
    let (ok, out, err) = cli(db, &["signing-key", "list"], None);
    assert!(ok, "{err}");
    out.lines().count()
}

async fn the_command_line_never_adds_a_second_signing_key(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing-key.pem");
    let config = ServerConfig {
        signing_key_file: Some(key_file.clone()),
        ..test_config()
    };
    let c = Council::start_on(&db, config, &PLAN).await;
    let hash = hash_of(&c.lock_body().await);
    c.post(
        "chair",
        "/api/meetings/{m}/signoffs",
        json!({ "hash": hash }),
    )
    .await;
    assert_eq!(key_count(&db), 1);
    // Read-only commands without the server's key file.
    let meeting = c.meeting.id.to_string();
    for args in [
        vec!["meeting", "list"],
        vec!["meeting", "status", &meeting],
        vec!["meeting", "audit", &meeting],
    ] {
        let (ok, _, err) = cli(&db, &args, None);
        assert!(ok, "{args:?}: {err}");
    }
    assert_eq!(key_count(&db), 1, "no key was added");
    // A sign-off that would sign, without the key file: refused, with
    // what to do, and nothing recorded.
    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "signoff",
            &meeting,
            "--as",
            "justerare",
            "--hash",
            &hash,
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("kept in a file"), "{err}");
    assert_eq!(key_count(&db), 1);
    // Another key file: refused, naming the key in use.
    let other = dir.path().join("other.pem");
    let (ok, _, err) = cli(
        &db,
        &[
            "--signing-key-file",
            other.to_str().unwrap(),
            "meeting",
            "signoff",
            &meeting,
            "--as",
            "justerare",
            "--hash",
            &hash,
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("as in use"), "{err}");
    assert!(!other.exists(), "no key file was made");
    // The server's key file, readable by others: refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let signoff_with_file = [
        "--signing-key-file",
        key_file.to_str().unwrap(),
        "meeting",
        "signoff",
        &meeting,
        "--as",
        "justerare",
        "--hash",
        &hash,
    ];
    let (ok, _, err) = cli(&db, &signoff_with_file, None);
    assert!(!ok);
    assert!(err.contains("chmod 600"), "{err}");
    let (_, view) = c.get("member", "/api/meetings/{m}/protocol").await;
    assert_eq!(view["state"], "locked", "{view}");
    // With the right file, private again: signed with the key in use.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, _, err) = cli(&db, &signoff_with_file, None);
    assert!(ok, "{err}");
    assert_eq!(key_count(&db), 1);
    let (_, report) = c.get("member", &format!("/api/verify/{hash}")).await;
    assert_eq!(report["protocol"]["signature"]["valid"], true);
    assert_eq!(report["protocol"]["signature"]["key_status"], "in_use");
    let key_id = report["protocol"]["signature"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Retiring the key: what it signed still verifies, saying so; a
    // server still holding it signs nothing more.
    let (ok, _, err) = cli(&db, &["signing-key", "retire", &key_id], None);
    assert!(ok, "{err}");
    let (_, report) = c.get("member", &format!("/api/verify/{hash}")).await;
    assert_eq!(report["protocol"]["signature"]["valid"], true, "{report}");
    assert_eq!(report["protocol"]["signature"]["key_status"], "retired");
    let page = reqwest::get(c.url(&format!("/verify?hash={hash}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("nyckeln avvecklades"), "{page}");
    let (_, keys) = c.get("member", "/.well-known/protokoll-signing-key").await;
    assert_eq!(keys["keys"][0]["current"], false);
    assert!(keys["keys"][0]["retired_at"].is_string());

    let second = create_meeting(&c.server.db, "Nästa möte").await;
    for (who, role) in [("secretary", Role::Secretary), ("chair", Role::Chair)] {
        c.server
            .db
            .dir
            .set_participant(second.id, c.users[who].id, role)
            .await
            .unwrap();
    }
    let lock = c
        .post(
            "secretary",
            &format!("/api/meetings/{}/protocol/lock", second.id),
            json!({}),
        )
        .await;
    assert_eq!(lock.0, StatusCode::OK, "{}", lock.1);
    let second_hash = lock.1["locked"]["hash"].as_str().unwrap().to_owned();
    let (status, body) = c
        .post(
            "chair",
            &format!("/api/meetings/{}/signoffs", second.id),
            json!({ "hash": second_hash }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retired"),
        "{body}"
    );
    let (_, view) = c
        .get("member", &format!("/api/meetings/{}/protocol", second.id))
        .await;
    assert!(
        view["locked"]["required"][0]["signed_at"].is_null(),
        "not recorded: {view}"
    );
    c.server.stop().await;

    // The retired key's file cannot come back; a new file makes a new key.
    let second_meeting = second.id.to_string();
    let (ok, _, err) = cli(
        &db,
        &[
            "--signing-key-file",
            key_file.to_str().unwrap(),
            "meeting",
            "signoff",
            &second_meeting,
            "--as",
            "chair",
            "--hash",
            &second_hash,
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("retired"), "{err}");
    let fresh = dir.path().join("fresh.pem");
    let (ok, _, err) = cli(
        &db,
        &[
            "--signing-key-file",
            fresh.to_str().unwrap(),
            "meeting",
            "signoff",
            &second_meeting,
            "--as",
            "chair",
            "--hash",
            &second_hash,
        ],
        None,
    );
    assert!(ok, "{err}");
    let (_, list, _) = cli(&db, &["signing-key", "list"], None);
    assert!(list.contains(&format!("{key_id}\t")), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.contains("\tin-use\t")).count(),
        1,
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(&key_id) && l.ends_with("erased")),
        "{list}"
    );
}

// ---- the upgrade: who is vouched for, and what was signed before ------------------------------

/// A value bound to a hand-written statement.
enum Bind {
    Id(uuid::Uuid),
    At(chrono::DateTime<chrono::Utc>),
    Text(String),
    Bytes(Vec<u8>),
}

/// Runs `sql` on the test database, as an earlier release (or an operator)
/// would have written the rows.
async fn exec(db: &TestDb, backend: Backend, sql: &str, binds: Vec<Bind>) {
    crate::with_pool!(backend, &db.url, |pool| {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Bind::Id(u) => q.bind(u),
                Bind::At(t) => q.bind(t),
                Bind::Text(t) => q.bind(t),
                Bind::Bytes(b) => q.bind(b),
            };
        }
        q.execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    })
}

/// Applies the migrations before 0008 only, as a database made by an
/// earlier release has them.
async fn migrate_before_0008(db: &TestDb, backend: Backend) {
    use std::borrow::Cow;
    macro_rules! before {
        ($m:expr) => {{
            let mut m = $m;
            m.migrations = Cow::Owned(
                m.migrations
                    .iter()
                    .filter(|m| m.version < 8)
                    .cloned()
                    .collect(),
            );
            m
        }};
    }
    match backend {
        Backend::Sqlite => {
            let options = db
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            before!(sqlx::migrate!("../migrations/sqlite"))
                .run(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            before!(sqlx::migrate!("../migrations/postgres"))
                .run(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

async fn an_upgrade_vouches_for_accounts_not_made_by_invitation(backend: Backend) {
    use Bind::*;
    let db = TestDb::new(backend).await;
    migrate_before_0008(&db, backend).await;
    let now = chrono::Utc::now();
    let (admin, invited, meeting) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    for (id, username, admin_flag) in [(admin, "gammal", true), (invited, "inbjuden", false)] {
        exec(
            &db,
            backend,
            if admin_flag {
                "INSERT INTO users (id, username, display_name, is_admin, created_at) VALUES ($1, $2, $2, TRUE, $3)"
            } else {
                "INSERT INTO users (id, username, display_name, is_admin, created_at) VALUES ($1, $2, $2, FALSE, $3)"
            },
            vec![Id(id), Text(username.into()), At(now)],
        )
        .await;
    }
    exec(
        &db,
        backend,
        "INSERT INTO meetings (id, title, created_at) VALUES ($1, 'Möte', $2)",
        vec![Id(meeting), At(now)],
    )
    .await;
    exec(
        &db,
        backend,
        "INSERT INTO invitations (token_hash, meeting_id, username, display_name, role, created_by, created_at, expires_at, used_at, id)
         VALUES ($1, $2, 'inbjuden', 'Inbjuden', 'chair', $3, $4, $4, $4, $5)",
        vec![Bytes(vec![7; 32]), Id(meeting), Id(admin), At(now), Id(uuid::Uuid::new_v4())],
    )
    .await;

    let database = db.database().await;
    let by_name = |name: &str| Username::parse(name).unwrap();
    let old_admin = database
        .dir
        .user_by_username(&by_name("gammal"))
        .await
        .unwrap()
        .unwrap();
    let vouch = old_admin
        .vouched
        .expect("an account that did not come from an invitation is vouched for");
    assert_eq!(vouch.via, "upgrade");
    let newcomer = database
        .dir
        .user_by_username(&by_name("inbjuden"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        newcomer.vouched.is_none(),
        "an invited account waits for an administrator"
    );
    assert!(!newcomer.may_sign_off());
    database.close().await;
}

async fn sign_offs_recorded_before_the_accounts_were_still_verify(backend: Backend) {
    use Bind::*;
    use ed25519_dalek::Signer as _;
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let hash = hash_of(&c.lock_body().await);
    // The sign-offs and the signed record as the release before wrote them:
    // names and roles only, format protokoll-signature/1.
    let keys = c.server.db.protocols.signing_keys().await.unwrap();
    let key = &keys[0];
    let secret: [u8; 32] = key.secret_key.clone().unwrap().try_into().unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let record = c
        .server
        .db
        .protocols
        .current(c.meeting.id)
        .await
        .unwrap()
        .unwrap();
    let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    for (who, name, role) in [
        ("chair", "Anders Holm", "chair"),
        ("justerare", "Maria Sundberg", "justerare"),
    ] {
        exec(
            &db,
            backend,
            "INSERT INTO signoffs (protocol_id, user_id, name, role, hash, signed_at) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![Id(record.protocol.id), Id(c.users[who].id.0), Text(name.into()), Text(role.into()), Text(hash.clone()), At(at)],
        )
        .await;
    }
    let when = protokoll::finalise::rfc3339(at);
    let v1 = format!(
        "{{\"format\":\"protokoll-signature/1\",\"key_id\":\"{}\",\"meeting_date\":null,\"meeting_id\":\"{}\",\"meeting_title\":\"Lokala Brå 2018-03-09\",\"protocol_hash\":\"{hash}\",\"signoffs\":[{{\"at\":\"{when}\",\"hash\":\"{hash}\",\"name\":\"Anders Holm\",\"role\":\"chair\"}},{{\"at\":\"{when}\",\"hash\":\"{hash}\",\"name\":\"Maria Sundberg\",\"role\":\"justerare\"}}],\"verified_at\":\"{when}\",\"version\":1}}",
        key.key_id, c.meeting.id
    );
    let signature = signing.sign(v1.as_bytes()).to_bytes().to_vec();
    exec(
        &db,
        backend,
        "INSERT INTO protocol_signatures (protocol_id, key_id, record, signature, verified_at) VALUES ($1, $2, $3, $4, $5)",
        vec![Id(record.protocol.id), Text(key.key_id.clone()), Text(v1), Bytes(signature), At(at)],
    )
    .await;
    exec(
        &db,
        backend,
        "UPDATE meetings SET state = 'verified' WHERE id = $1",
        vec![Id(c.meeting.id.as_uuid())],
    )
    .await;
    let (_, report) = c.get("member", &format!("/api/verify/{hash}")).await;
    assert_eq!(report["protocol"]["state"], "verified", "{report}");
    assert_eq!(report["protocol"]["signature"]["valid"], true, "{report}");
    for r in report["protocol"]["required"].as_array().unwrap() {
        assert!(r["signed_at"].is_string(), "{r}");
        assert!(r.get("signed_by").is_none(), "nothing made up: {r}");
    }
    let page = reqwest::get(c.url(&format!("/verify?hash={hash}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("giltig"), "{page}");
    assert!(!page.contains("konto "), "{page}");
    let (status, view) = c.get("member", "/api/meetings/{m}/protocol").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    c.server.stop().await;
}

crate::on_both_backends!(
    a_secretary_cannot_sign_off_through_accounts_of_their_own_invitation,
    sign_offs_with_a_token_or_from_the_command_line_say_so,
    two_participants_of_one_meeting_cannot_share_a_name,
    an_invitation_accepted_after_the_lock_adds_nobody,
    a_rejection_reason_follows_the_text_rule_and_keeps_its_line_breaks,
    the_command_line_never_adds_a_second_signing_key,
    an_upgrade_vouches_for_accounts_not_made_by_invitation,
    sign_offs_recorded_before_the_accounts_were_still_verify,
);
