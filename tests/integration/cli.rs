//! The administrator's command line, used as scripts use it, and what the
//! server logs (never a secret).

use std::process::Stdio;

use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) fn protokoll(db: &TestDb, args: &[&str], stdin: Option<&str>) -> (String, String) {
    let (ok, stdout, stderr) = cli(db, args, stdin);
    assert!(ok, "protokoll {args:?} failed: {stderr}");
    (stdout.trim().to_owned(), stderr)
}

async fn the_cli_sets_up_a_council_that_the_server_then_serves(backend: Backend) {
    let db = TestDb::new(backend).await;
    protokoll(&db, &["agency", "create", "Polis"], None);
    protokoll(
        &db,
        &[
            "user",
            "create",
            "anna",
            "--name",
            "Anna Andersson",
            "--agency",
            "Polis",
            "--password-stdin",
        ],
        Some("annas långa lösenord\n"),
    );
    let (_, stderr) = protokoll(
        &db,
        &["user", "create", "sekr", "--name", "Sekreteraren"],
        None,
    );
    assert!(
        stderr.contains("password for sekr: "),
        "a generated password is shown once"
    );
    let (token, _) = protokoll(&db, &["token", "issue", "anna", "--name", "skript"], None);
    assert!(token.starts_with("pk_"));
    let (meeting, _) = protokoll(
        &db,
        &[
            "meeting",
            "create",
            "Lokala Brå 2018-03-09",
            "--date",
            "2018-03-09",
            "--time",
            "09:00",
            "--section",
            "1|Mötets öppnande|secretary",
            "--section",
            "2.1|Polis|agency:Polis",
            "--participant",
            "anna=member",
            "--participant",
            "sekr=secretary",
        ],
        None,
    );
    let (list, _) = protokoll(&db, &["meeting", "list"], None);
    assert!(
        list.contains(&meeting) && list.contains("Lokala Brå 2018-03-09"),
        "{list}"
    );

    let server = ProcessServer::start(&db).await;
    let meeting_id = meeting.parse().unwrap();
    let mut anna = Client::synced(server.addr, meeting_id, &token).await;
    anna.until("agenda", |c| {
        use yrs::{Array, ReadTxn, Transact};
        let txn = c.doc.transact();
        txn.get_array("agenda").is_some_and(|a| a.len(&txn) == 2)
    })
    .await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("http://{}/api/login", server.addr))
        .json(&json!({ "username": "anna", "password": "annas långa lösenord" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    let (tokens, _) = protokoll(&db, &["token", "list", "anna"], None);
    let token_id = tokens.split('\t').next().unwrap().to_owned();
    protokoll(&db, &["token", "revoke", &token_id], None);
    let refused = bearer_client(&token)
        .get(format!("http://{}/api/me", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        401,
        "a token revoked from the CLI stops working"
    );
    server.kill().await;
}

/// Signs in, issues a token, connects with it in the URL, fails a sign-in:
/// none of the password, the session id or the tokens may reach the log.
async fn secrets_never_reach_the_log(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let meeting = create_meeting(&database, "Logs").await;
    let (_, admin_token) = user_with_token(&database, "admin", true).await;
    database.close().await;
    let log_path = tempfile::NamedTempFile::new().unwrap();
    let log_file = std::fs::File::create(log_path.path()).unwrap();
    let server = ProcessServer::start_logging_to(&db, Stdio::from(log_file), "debug").await;
    let base = format!("http://{}", server.addr);
    let password = "hemligt-lösenord-4711";

    let admin = bearer_client(&admin_token);
    let created = admin
        .post(format!("{base}/api/admin/users"))
        .json(&json!({ "username": "anna", "display_name": "Anna", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let anna: Value = created.json().await.unwrap();
    let put = admin
        .put(format!(
            "{base}/api/meetings/{}/participants/{}",
            meeting.id,
            anna["id"].as_str().unwrap()
        ))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let section = admin
        .post(format!("{base}/api/meetings/{}/agenda", meeting.id))
        .json(&json!({ "id": "polis", "title": "Polis", "owner": { "kind": "user", "user_id": anna["id"] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(section.status(), 201);
    let http = reqwest::Client::new();
    let wrong = http
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": "anna", "password": "fel-lösenord-0815" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let login = http
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": "anna", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session_id = cookie.split_once('=').unwrap().1.to_owned();
    let issued: Value = http
        .post(format!("{base}/api/me/tokens"))
        .header("cookie", &cookie)
        .json(&json!({ "name": "script" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["secret"].as_str().unwrap().to_owned();
    let mut client = Client::synced(server.addr, meeting.id, &token).await;
    client.write("section:polis", "hej").await;
    let mut admin_client = Client::synced(server.addr, meeting.id, &admin_token).await;
    admin_client
        .until("the edit", |c| c.section("section:polis").contains("hej"))
        .await;
    let status = server.terminate().await;
    assert!(status.success());

    let log = std::fs::read_to_string(log_path.path()).unwrap();
    assert!(
        log.contains("/api/login") && log.contains("/sync/"),
        "requests were logged at debug:\n{log}"
    );
    for (what, secret) in [
        ("password", password),
        ("wrong password", "fel-lösenord-0815"),
        ("session id", session_id.as_str()),
        ("API token", token.as_str()),
        ("admin token", admin_token.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} appears in the log");
    }
}

crate::on_both_backends!(
    the_cli_sets_up_a_council_that_the_server_then_serves,
    secrets_never_reach_the_log,
);
