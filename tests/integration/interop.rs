//! Interop with the reference npm clients (`yjs` + `y-websocket`, versions
//! pinned in `tests/interop/package.json`): Node providers and a Rust client
//! edit one meeting together and converge.

use std::{path::PathBuf, process::Stdio};

use base64::Engine;
use serde_json::Value;
use tokio::sync::OnceCell;
use yrs::{ReadTxn, StateVector, Transact, updates::decoder::Decode};

use crate::helpers::*;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// Installs the pinned npm packages once per test run, if not yet there.
pub async fn npm_packages() -> &'static PathBuf {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_init(|| async {
        let dir = interop_dir();
        if !dir.join("node_modules/y-websocket").exists() {
            let status = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .await
                .expect("npm must be installed for the interop tests");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
        dir
    })
    .await
}

async fn npm_clients_and_a_rust_client_converge(backend: Backend) {
    let dir = npm_packages().await;
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Interop").await;
    let mut rust = server.synced(meeting.id).await;

    let base = format!("ws://{}/sync", server.addr);
    let markers = ["node-1", "node-2", "rust-1"];
    let mut nodes = Vec::new();
    for marker in &markers[..2] {
        let child = tokio::process::Command::new("node")
            .arg("client.mjs")
            .arg(&base)
            .arg(meeting.id.to_string())
            .arg(marker)
            .args(markers)
            .env("PROTOKOLL_TOKEN", server.writer())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed for the interop tests");
        nodes.push(child);
    }
    rust.write("section:interop", "rust-1").await;
    rust.until("both Node clients' paragraphs", |c| {
        let s = c.section("section:interop");
        s.contains("node-1") && s.contains("node-2")
    })
    .await;

    let rust_sv = rust.doc.transact().state_vector();
    for child in nodes {
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("node client finishes in time")
            .unwrap();
        assert!(
            out.status.success(),
            "node client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(result["markers"], serde_json::json!(markers));
        assert_eq!(result["xml"], rust.section("section:interop"));
        let sv = base64::engine::general_purpose::STANDARD
            .decode(result["stateVector"].as_str().unwrap())
            .unwrap();
        assert_eq!(StateVector::decode_v1(&sv).unwrap(), rust_sv, "same state");
    }
    server.stop().await;
}

crate::on_both_backends!(npm_clients_and_a_rust_client_converge);

/// A real y-websocket client whose update the guard refuses gets the
/// permission-denied message and is disconnected; the others carry on.
async fn a_refused_npm_client_gets_permission_denied_and_is_disconnected(backend: Backend) {
    let dir = npm_packages().await;
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Refusal").await;
    // An agency user who is in the meeting but owns no section.
    let agency = server.db.dir.create_agency("Polis").await.unwrap().id;
    let (user, token) = agency_user_with_token(&server.db, "polis", false, Some(agency)).await;
    server
        .db
        .dir
        .set_participant(meeting.id, user.id, protokoll::people::Role::Member)
        .await
        .unwrap();
    let mut bystander = server.synced(meeting.id).await;

    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new("node")
            .arg("refused.mjs")
            .arg(format!("ws://{}/sync", server.addr))
            .arg(meeting.id.to_string())
            .arg("section:skola")
            .env("PROTOKOLL_TOKEN", &token)
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node client finishes in time")
    .unwrap();
    assert!(
        out.status.success(),
        "node client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(result["denied"], true, "{result}");
    assert!(
        result["reason"].as_str().unwrap().contains("section skola"),
        "{result}"
    );
    assert_eq!(result["closeCode"], 4403, "{result}");

    bystander.write("section:skola", "still here").await;
    let mut late = server.synced(meeting.id).await;
    late.until("the bystander's edit", |c| {
        c.section("section:skola").contains("still here")
    })
    .await;
    assert_eq!(
        late.section("section:skola"),
        "<paragraph>still here</paragraph>"
    );
    server.stop().await;
}

mod refusal {
    use super::*;
    crate::on_both_backends!(a_refused_npm_client_gets_permission_denied_and_is_disconnected);
}
