//! Revocations the server cannot hear (the command line writes to the
//! database directly, another node may while Redis is down) are found by
//! its one recheck per ping interval, which closes exactly the affected
//! sockets.

use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use protokoll::{
    auth::{self, SESSION_COOKIE},
    config::ServerConfig,
    meeting::MeetingId,
    people::Role,
};

/// What the last client writes once every revocation has been seen.
const STILL_HERE: &str = "fortfarande uppkopplad";

/// Reads a client (answering the server's pings) until the server closes
/// it, returning the code and reason, or until `STILL_HERE` arrives.
fn watch(mut client: Client) -> JoinHandle<Option<(u16, String)>> {
    tokio::spawn(async move {
        tokio::time::timeout(DEADLINE, async {
            while client.step().await {
                if client.section("section:polis").contains(STILL_HERE) {
                    return None;
                }
            }
            client.closed.clone()
        })
        .await
        .expect("closed or told that the others stayed, in time")
    })
}

async fn open(
    addr: std::net::SocketAddr,
    meeting: MeetingId,
    token: &str,
    n: usize,
) -> Vec<JoinHandle<Option<(u16, String)>>> {
    let mut watched = Vec::with_capacity(n);
    for _ in 0..n {
        watched.push(watch(Client::synced(addr, meeting, token).await));
    }
    watched
}

async fn closed_with(watched: Vec<JoinHandle<Option<(u16, String)>>>, code: u16, reason: &str) {
    for socket in watched {
        let closed = socket.await.unwrap();
        assert_eq!(closed, Some((code, reason.to_owned())));
    }
}

/// 200 sockets of six people; one person's token is revoked with the
/// command line, another's sessions end as a password reset from the
/// command line ends them, a third is removed from the meeting by a write
/// this node does not hear. Exactly their sockets close, with the reason;
/// the others, an administrator's among them, stay open through further
/// rechecks.
async fn revocations_the_server_cannot_hear_close_exactly_their_sockets(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start_with(
        &db,
        ServerConfig {
            ping_interval_secs: 1,
            max_sockets_per_user: 100,
            max_sockets_per_address: 1_000,
            ..test_config()
        },
    )
    .await;
    let dir = &server.db.dir;
    let (meeting, scribe) = writable_meeting(&server.db, "Många uppkopplingar").await;
    let m = meeting.id;
    let mut tokens = std::collections::HashMap::new();
    for who in ["revoked", "signed-out", "removed", "stays", "sentinel"] {
        let (user, token) = user_with_token(&server.db, who, false).await;
        dir.set_participant(m, user.id, Role::Member).await.unwrap();
        tokens.insert(who, (user, token));
    }
    let token_id = |who: &str| {
        let user = tokens[who].0.id;
        async move { dir.list_tokens(user).await.unwrap()[0].id.0.to_string() }
    };
    let session = auth::open_session(
        dir,
        tokens["signed-out"].0.clone(),
        chrono::Duration::hours(1),
    )
    .await
    .unwrap();

    let revoked = open(server.addr, m, &tokens["revoked"].1, 50).await;
    let mut signed_out = Vec::new();
    for _ in 0..50 {
        let mut request = format!("ws://{}/sync/{m}", server.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "cookie",
            format!("{SESSION_COOKIE}={}", session.secret)
                .parse()
                .unwrap(),
        );
        let mut client = Client::try_connect_request(request).await.unwrap();
        client.until("synced", |c| c.synced).await;
        signed_out.push(watch(client));
    }
    let removed = open(server.addr, m, &tokens["removed"].1, 49).await;
    let mut stay = open(server.addr, m, &tokens["stays"].1, 40).await;
    // An administrator is no participant: no recheck may remove them.
    stay.extend(open(server.addr, m, &server.admin_token, 10).await);
    let sentinel = open(server.addr, m, &tokens["sentinel"].1, 1).await;

    let id = token_id("revoked").await;
    crate::cli::protokoll(&db, &["token", "revoke", &id], None);
    dir.delete_sessions_of(tokens["signed-out"].0.id)
        .await
        .unwrap();
    dir.remove_participant(m, tokens["removed"].0.id)
        .await
        .unwrap();
    closed_with(revoked, 4401, "sign-in no longer valid").await;
    closed_with(signed_out, 4401, "sign-in no longer valid").await;
    closed_with(removed, 4403, "removed from the meeting").await;

    // One more revocation seen means at least one more recheck since.
    let id = token_id("sentinel").await;
    crate::cli::protokoll(&db, &["token", "revoke", &id], None);
    closed_with(sentinel, 4401, "sign-in no longer valid").await;
    let mut writer = Client::synced(server.addr, m, &scribe).await;
    writer.write("section:polis", STILL_HERE).await;
    for socket in stay {
        assert_eq!(socket.await.unwrap(), None, "still open");
    }
    writer.close().await;
    server.stop().await;
}

crate::on_both_backends!(revocations_the_server_cannot_hear_close_exactly_their_sockets);
