//! Clients on one meeting converge; late joiners get everything; presence
//! follows connections.

use crate::helpers::*;

async fn two_clients_converge_after_concurrent_edits_and_a_late_joiner_gets_the_full_state(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Lokala Brå 2018-03-09").await;
    let mut polis = server.synced(meeting.id).await;
    let mut skola = server.synced(meeting.id).await;

    // Concurrent: both write before seeing the other's edit.
    for i in 0..20 {
        polis.write("section:polis", &format!("polis {i}")).await;
        skola.write("section:skola", &format!("skola {i}")).await;
    }
    let has_all = |c: &Client| {
        c.section("section:polis").matches("<paragraph>").count() == 20
            && c.section("section:skola").matches("<paragraph>").count() == 20
    };
    polis.until("skola's edits", has_all).await;
    skola.until("polis's edits", has_all).await;
    assert_eq!(full_state(&polis.doc), full_state(&skola.doc), "converged");

    let late = server.synced(meeting.id).await;
    assert!(has_all(&late), "late joiner has everything");
    assert_eq!(
        late.section("section:polis"),
        polis.section("section:polis")
    );
    assert_eq!(
        late.section("section:skola"),
        skola.section("section:skola")
    );
    server.stop().await;
}

async fn presence_of_a_closed_client_is_removed_for_the_others(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Presence").await;
    let mut watcher = server.synced(meeting.id).await;
    let mut leaver = server.synced(meeting.id).await;
    let leaver_id = leaver.client_id();
    leaver.set_presence(r#"{"user":{"name":"Polis"}}"#).await;
    watcher
        .until("leaver's presence", |c| c.presence.contains_key(&leaver_id))
        .await;
    // The server replaced the claimed name with the signed-in identity.
    let state: serde_json::Value = serde_json::from_str(&watcher.presence[&leaver_id]).unwrap();
    assert_eq!(state["user"]["name"], "scribe (test)");

    // A newcomer is told who is already here.
    let newcomer = {
        let mut c = server.synced(meeting.id).await;
        c.until("existing presence", |c| c.presence.contains_key(&leaver_id))
            .await;
        c
    };

    leaver.close().await;
    watcher
        .until("leaver's presence removed", |c| {
            !c.presence.contains_key(&leaver_id)
        })
        .await;
    let mut newcomer = newcomer;
    newcomer
        .until("leaver's presence removed", |c| {
            !c.presence.contains_key(&leaver_id)
        })
        .await;
    server.stop().await;
}

async fn unknown_meeting_is_refused_with_404(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let url = format!(
            "ws://{}/sync/{id}?token={}",
            server.addr, server.admin_token
        );
        match Client::try_connect(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{id}")
            }
            Err(other) => panic!("expected HTTP 404, got {other}"),
            Ok(_) => panic!("upgrade to unknown meeting {id} was accepted"),
        }
    }
    server.stop().await;
}

async fn graceful_shutdown_closes_clients_with_1001_and_keeps_their_edits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Shutdown").await;
    let mut writer = server.synced(meeting.id).await;
    let mut reader = server.synced(meeting.id).await;
    writer.write("section:brand", "Lugnt").await;
    reader
        .until("the edit", |c| c.section("section:brand").contains("Lugnt"))
        .await;
    let store = db.database().await.docs;
    server.stop().await;
    let (code, reason) = reader.closed_by_server().await;
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    let doc = stored_doc(&store, meeting.id).await;
    assert_eq!(
        fragment_text(&doc, "section:brand"),
        "<paragraph>Lugnt</paragraph>"
    );
}

crate::on_both_backends!(
    two_clients_converge_after_concurrent_edits_and_a_late_joiner_gets_the_full_state,
    presence_of_a_closed_client_is_removed_for_the_others,
    unknown_meeting_is_refused_with_404,
    graceful_shutdown_closes_clients_with_1001_and_keeps_their_edits,
);
