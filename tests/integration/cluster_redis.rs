//! Several nodes and their Redis (issues 23 and 24): nothing a node
//! publishes is lost to a Redis restart, and nothing anyone else publishes
//! on Redis is taken. Each test runs the site of `cluster` (its own
//! PostgreSQL, its own Redis with a password, three node processes, nginx)
//! and a plain Redis client of its own, as an operator or an attacker has.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::StreamExt;
use protokoll::{
    cluster::envelope,
    meeting::MeetingId,
    people::{Role, Section, SectionId, SectionOwner},
    store::{ClusterKeys, Database, KeySecret},
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cluster::{Site, eventually, metric_of};
use crate::helpers::{
    Backend, Cli, Client, DEADLINE, TestDb, agency_user_with_token, bearer_client, create_meeting,
    init_logs, stored_doc, user_with_token, writable_meeting,
};

/// How soon every node must hear of what one node did.
const WITHIN: Duration = Duration::from_secs(1);

fn has(client: &Client, root: &str, text: &str) -> bool {
    client.section(root).contains(text)
}

/// The owner the document's agenda names for `section`.
fn agenda_owner(client: &Client, section: &str) -> Option<String> {
    use yrs::{Array, Map, Out, ReadTxn, Transact};
    let txn = client.doc.transact();
    let agenda = txn.get_array("agenda")?;
    agenda.iter(&txn).find_map(|item| match item {
        Out::YMap(map) => {
            let get = |k: &str| map.get(&txn, k).map(|v| v.to_string(&txn));
            (get("id").as_deref() == Some(section)).then(|| get("owner").unwrap_or_default())
        }
        _ => None,
    })
}

/// A section owned by an agency.
async fn agency_section(db: &Database, meeting: MeetingId, id: &str, agency: &str) {
    let agency = match db.dir.agency_by_name(agency).await.unwrap() {
        Some(a) => a,
        None => db.dir.create_agency(agency).await.unwrap(),
    };
    db.dir
        .add_section(
            meeting,
            &Section {
                id: SectionId::parse(id).unwrap(),
                number: "9".into(),
                title: id.into(),
                owner: SectionOwner::Agency {
                    agency_id: agency.id,
                },
            },
        )
        .await
        .unwrap();
}

/// A participant of `agency` with a token.
async fn agency_member(
    db: &Database,
    meeting: MeetingId,
    username: &str,
    agency: &str,
) -> (protokoll::people::User, String) {
    let agency = db.dir.agency_by_name(agency).await.unwrap().unwrap();
    let (user, token) = agency_user_with_token(db, username, false, Some(agency.id)).await;
    db.dir
        .set_participant(meeting, user.id, Role::Member)
        .await
        .unwrap();
    (user, token)
}

/// Reads `client` until `done` holds, for at most `within`; false if it
/// did not (the connection closing counts as not).
async fn within(client: &mut Client, within: Duration, done: impl Fn(&Client) -> bool) -> bool {
    tokio::time::timeout(within, async {
        while !done(client) {
            if !client.step().await {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false)
}

/// Issue 23, defect 2: after Redis restarts, each node's first message
/// went out on the connection that died with it and was lost. A keystroke
/// through node 1, a token revoked through node 2 and a section given to
/// another agency through node 3 (each the first message its node
/// publishes after the restart) must each reach every node within a
/// second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_a_keystroke_a_revocation_and_a_reassignment_reach_every_node_within_a_second()
 {
    init_logs();
    let mut site = Site::start().await;
    let db = site.database().await;
    site.subscribed(true).await;
    let (meeting, scribe) = writable_meeting(&db, "Omstart").await;
    let m = meeting.id;
    agency_section(&db, m, "uppdrag", "Polis").await;
    db.dir.create_agency("Skola").await.unwrap();
    let (_, police_token) = agency_member(&db, m, "polisen", "Polis").await;
    let (_, school_token) = agency_member(&db, m, "skolan", "Skola").await;
    let (member, member_token) = user_with_token(&db, "medlem", false).await;
    db.dir
        .set_participant(m, member.id, Role::Member)
        .await
        .unwrap();
    let addrs = site.addrs.clone();

    // Everyone connected to a node of their own, and every node has
    // published before the restart (so each holds a connection that dies
    // with Redis).
    let mut watchers = Vec::new();
    for addr in &addrs {
        watchers.push(Client::synced(*addr, m, &scribe).await);
    }
    for (i, watcher) in watchers.iter_mut().enumerate() {
        watcher.write("section:polis", &format!("före {i}")).await;
    }
    for watcher in &mut watchers {
        watcher
            .until("every node's keystroke before the restart", |c| {
                (0..3).all(|i| has(c, "section:polis", &format!("före {i}")))
            })
            .await;
    }
    let mut police = Client::synced(addrs[0], m, &police_token).await;
    let mut school = Client::synced(addrs[0], m, &school_token).await;
    let mut member_sockets = Vec::new();
    for addr in &addrs {
        member_sockets.push(Client::synced(*addr, m, &member_token).await);
    }

    site.redis.stop().await;
    site.subscribed(false).await;
    site.redis.start_again().await;
    site.subscribed(true).await;

    let mut lost = Vec::new();

    // 1. A keystroke through node 1.
    watchers[0].write("section:polis", "efter omstarten").await;
    let sent = Instant::now();
    for (i, watcher) in watchers.iter_mut().enumerate().skip(1) {
        let left = WITHIN.saturating_sub(sent.elapsed());
        if !within(watcher, left, |c| {
            has(c, "section:polis", "efter omstarten")
        })
        .await
        {
            lost.push(format!(
                "the keystroke through node 1 did not reach node {}",
                i + 1
            ));
        }
    }
    let keystroke_took = sent.elapsed();

    // 2. The member's token revoked through node 2: their sockets on every
    //    node close.
    let token_id = db.dir.list_tokens(member.id).await.unwrap()[0].id;
    let revoked = bearer_client(&member_token)
        .delete(format!("http://{}/api/me/tokens/{token_id}", addrs[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let revoked_at = Instant::now();
    for (i, socket) in member_sockets.iter_mut().enumerate() {
        let left = WITHIN.saturating_sub(revoked_at.elapsed());
        match tokio::time::timeout(left, socket.closed_by_server()).await {
            Ok((4401, _)) => {}
            other => lost.push(format!(
                "the revocation through node 2 did not close the socket on node {} ({other:?})",
                i + 1
            )),
        }
    }
    let revocation_took = revoked_at.elapsed();

    // 3. The police's section given to the school through node 3: node 1
    //    takes the new owner, refuses the police and takes the school.
    let skola = db.dir.agency_by_name("Skola").await.unwrap().unwrap();
    let reassigned = bearer_client(&scribe)
        .patch(format!(
            "http://{}/api/meetings/{m}/agenda/uppdrag",
            addrs[2]
        ))
        .json(&json!({"owner": {"kind": "agency", "agency_id": skola.id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reassigned.status(), 200);
    let reassigned_at = Instant::now();
    let owner = format!("agency:{}", skola.id);
    let left = WITHIN.saturating_sub(reassigned_at.elapsed());
    if !within(&mut police, left, |c| {
        agenda_owner(c, "uppdrag").as_deref() == Some(&owner)
    })
    .await
    {
        lost.push("the reassignment through node 3 did not reach node 1".into());
    }
    let reassignment_took = reassigned_at.elapsed();
    police.write("section:uppdrag", "polisens text").await;
    match tokio::time::timeout(Duration::from_secs(3), police.closed_by_server()).await {
        Ok((4403, _)) => {}
        other => lost.push(format!(
            "node 1 took the police's keystroke in the school's section ({other:?})"
        )),
    }
    assert!(lost.is_empty(), "lost after the Redis restart: {lost:#?}");
    eprintln!(
        "figure: after a Redis restart: keystroke on every node {keystroke_took:?}, \
         revocation closed every socket {revocation_took:?}, reassignment on node 1 \
         {reassignment_took:?} (each from its request)"
    );
    school.write("section:uppdrag", "skolans text").await;
    for watcher in &mut watchers {
        watcher
            .until("the school's text in its new section", |c| {
                has(c, "section:uppdrag", "skolans text")
            })
            .await;
    }
    let stored = stored_doc(&db.docs, m).await;
    let uppdrag = crate::helpers::fragment_text(&stored, "section:uppdrag");
    assert!(!uppdrag.contains("polisens text"), "{uppdrag}");
    assert_eq!(
        metric_of(
            addrs[0],
            "protokoll_cluster_dropped_total{why=\"redis_error\"}"
        )
        .await,
        0
    );
    for client in watchers.into_iter().chain([school]) {
        client.close().await;
    }
    site.stop().await;
}

/// What a plain Redis client with the password sees: every message on the
/// channels it subscribed to, as (channel, payload).
async fn spy(url: &str, channels: &[String]) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let client = redis::Client::open(url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    for channel in channels {
        pubsub.subscribe(channel).await.unwrap();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let channel = message.get_channel_name().to_owned();
            if tx
                .send((channel, message.get_payload_bytes().to_vec()))
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

/// The next message `spy` saw that satisfies `pick`.
async fn captured(
    seen: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    what: &str,
    pick: impl Fn(&str, &Value) -> bool,
) -> (String, Vec<u8>) {
    tokio::time::timeout(DEADLINE, async {
        while let Some((channel, payload)) = seen.recv().await {
            if let Some(body) = body_of(&payload)
                && pick(&channel, &body)
            {
                return (channel, payload);
            }
        }
        panic!("the spy stopped");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what} on Redis"))
}

/// The JSON inside a sealed message (not verified: the spy has no key).
fn body_of(payload: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(4, '.');
    let (_, _, _, body) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    serde_json::from_str(body).ok()
}

/// The key id a sealed message names.
fn key_id_of(payload: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(payload).ok()?;
    text.strip_prefix("v1.")?.split('.').next()?.parse().ok()
}

async fn publish(url: &str, channel: &str, payload: &[u8]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A document update that writes `text` into `section` (from a client of
/// its own, as any Yjs client makes one).
fn forged_update(section: &str, text: &str) -> Vec<u8> {
    use yrs::{Transact, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim};
    let doc = yrs::Doc::new();
    let mut txn = doc.transact_mut();
    let fragment = txn.get_or_insert_xml_fragment(format!("section:{section}").as_str());
    let p = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
    p.push_back(&mut txn, XmlTextPrelim::new(text));
    txn.encode_update_v1()
}

async fn log_head(db: &TestDb, meeting: MeetingId) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let head: Option<i64> =
        sqlx::query_scalar("SELECT head FROM meeting_log_heads WHERE meeting_id = $1")
            .bind(meeting.as_uuid())
            .fetch_optional(&pool)
            .await
            .unwrap();
    pool.close().await;
    head.unwrap_or(0)
}

async fn refused(node: std::net::SocketAddr, why: &str) -> u64 {
    metric_of(
        node,
        &format!("protokoll_cluster_refused_total{{why=\"{why}\"}}"),
    )
    .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const FORGED: &str = "FÖRFALSKAD";

/// Issue 24, finding 1, as it was performed: someone who can reach Redis
/// publishes a crafted update into the police's section and an account
/// event closing the school's sockets, and replays genuine messages they
/// captured. No client sees the forged text, the log and the snapshot hold
/// none of it (and the snapshot claims no position past the log), no
/// socket closes, and every node counts what it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_publisher_on_redis_changes_nothing() {
    init_logs();
    let site = Site::start().await;
    let db = site.database().await;
    site.subscribed(true).await;
    let (meeting, scribe) = writable_meeting(&db, "Förfalskning").await;
    let m = meeting.id;
    agency_section(&db, m, "polisen", "Polis").await;
    agency_section(&db, m, "skolan", "Skola").await;
    let (_, police_token) = agency_member(&db, m, "polis1", "Polis").await;
    let (school, school_token) = agency_member(&db, m, "skola1", "Skola").await;
    let addrs = site.addrs.clone();
    let url = site.redis.url();

    // Without the password Redis itself refuses (the deploy kit sets one).
    let anonymous = redis::Client::open(site.redis.url_without_password()).unwrap();
    let mut conn = anonymous.get_multiplexed_async_connection().await.unwrap();
    let refused_by_redis: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg("protokoll:account")
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert!(refused_by_redis.is_err(), "Redis without the password");

    // With it (leaked, or Redis reachable some other way), the attacker
    // first listens.
    let meeting_channel = format!("protokoll:meeting:{m}");
    let mut seen = spy(
        &url,
        &[meeting_channel.clone(), "protokoll:account".to_owned()],
    )
    .await;
    let mut school_client = Client::synced(addrs[0], m, &school_token).await;
    let mut police = Client::synced(addrs[1], m, &police_token).await;
    let mut watcher = Client::synced(addrs[2], m, &scribe).await;
    police.write("section:polisen", "äkta polistext").await;
    let genuine_update = captured(&mut seen, "the police's keystroke", |channel, body| {
        channel == meeting_channel && body["event"]["kind"] == "updates"
    })
    .await;
    for client in [&mut school_client, &mut watcher] {
        client
            .until("the police's keystroke", |c| {
                has(c, "section:polisen", "äkta polistext")
            })
            .await;
    }
    // A genuine account event: the school's role changed through node 3,
    // its socket on node 1 reconnects.
    let changed = bearer_client(&scribe)
        .put(format!(
            "http://{}/api/meetings/{m}/participants/{}",
            addrs[2], school.id
        ))
        .json(&json!({"role": "justerare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let genuine_account = captured(&mut seen, "the role change", |channel, body| {
        channel == "protokoll:account" && body["event"]["kind"] == "account"
    })
    .await;
    let (code, _) = school_client.closed_by_server().await;
    assert_eq!(code, 1012, "a genuine role change reconnects");
    let mut school_client = Client::synced(addrs[0], m, &school_token).await;

    let head = log_head(&site.db, m).await;
    let before: Vec<(u64, u64, u64)> = {
        let mut v = Vec::new();
        for node in &addrs {
            v.push((
                refused(*node, "unauthenticated").await,
                refused(*node, "unknown_key").await,
                refused(*node, "replayed").await,
            ));
        }
        v
    };
    let update = STANDARD.encode(forged_update("polisen", FORGED));
    let forged_updates = json!({
        "origin": Uuid::new_v4(), "kind": "updates", "meeting": m,
        "first": head + 1, "last": head + 1, "updates": [update],
        "owners": [], "ownership": false,
    });
    let school_tokens = db.dir.list_tokens(school.id).await.unwrap();
    let forged_account = json!({
        "origin": Uuid::new_v4(), "kind": "account", "who": "token",
        "id": school_tokens[0].id, "code": 4401, "reason": "forged",
    });
    // The update as the review sent it (plain JSON, as the nodes spoke
    // before), with a made-up MAC under the real key id, and under a key
    // id nobody has; the account event plain; then the replays.
    let keys = db.dir.cluster_keys().unwrap().active().await.unwrap();
    let real_id = keys[0].id;
    let body = json!({"origin": Uuid::new_v4(), "seq": 1, "ts": now_ms(), "event": {
        "kind": "updates", "meeting": m, "first": head + 1, "last": head + 1,
        "updates": [update], "owners": [], "ownership": false,
    }});
    let made_up_mac = format!("v1.{real_id}.{}.{body}", "ab".repeat(32));
    let wrong_key = envelope::seal(
        999_999,
        &KeySecret::from_bytes([7; 32]),
        &meeting_channel,
        Uuid::new_v4(),
        1,
        now_ms(),
        body["event"].to_string().as_bytes(),
    );
    publish(
        &url,
        &meeting_channel,
        forged_updates.to_string().as_bytes(),
    )
    .await;
    publish(&url, &meeting_channel, made_up_mac.as_bytes()).await;
    publish(&url, &meeting_channel, &wrong_key).await;
    publish(
        &url,
        "protokoll:account",
        forged_account.to_string().as_bytes(),
    )
    .await;
    publish(&url, &genuine_update.0, &genuine_update.1).await;
    publish(&url, &genuine_account.0, &genuine_account.1).await;

    // A genuine keystroke after all of it reaches everyone, and nobody
    // holds the forged text (Redis delivers in order: anything taken of it
    // would be there by now).
    police.write("section:polisen", "efter attacken").await;
    for client in [&mut school_client, &mut watcher, &mut police] {
        client
            .until("the keystroke after the attack, or the forgery", |c| {
                has(c, "section:polisen", "efter attacken") || has(c, "section:polisen", FORGED)
            })
            .await;
        assert!(
            !has(client, "section:polisen", FORGED),
            "forged text reached a client: {}",
            client.section("section:polisen")
        );
    }
    // Every node counts what it refused (a node ignores its own messages,
    // so a replay counts on the two others).
    for (i, node) in addrs.iter().enumerate() {
        let (unauthenticated, unknown, replayed) = before[i];
        let replays = 2 - u64::from(i == 1) - u64::from(i == 2);
        eventually("the forged messages counted", || async move {
            refused(*node, "unauthenticated").await == unauthenticated + 3
                && refused(*node, "unknown_key").await == unknown + 1
                && refused(*node, "replayed").await == replayed + replays
        })
        .await;
    }
    // Even a fresh, authentic account event (a node's, or one made with
    // the key from Postgres) only makes the nodes check the database,
    // which says the school's token is valid.
    let checks = metric_of(addrs[0], "protokoll_cluster_account_checks_total").await;
    let authentic = envelope::seal(
        real_id,
        &keys[0].secret,
        "protokoll:account",
        Uuid::new_v4(),
        1,
        now_ms(),
        json!({"kind": "account", "who": "token", "id": school_tokens[0].id, "code": 4401,
            "reason": "made with the key"})
        .to_string()
        .as_bytes(),
    );
    publish(&url, "protokoll:account", &authentic).await;
    let node = addrs[0];
    eventually("node 1 checked the authentic event", || async move {
        metric_of(node, "protokoll_cluster_account_checks_total").await > checks
    })
    .await;
    police.write("section:polisen", "efter kontrollen").await;
    for client in [&mut school_client, &mut watcher, &mut police] {
        client
            .until("a keystroke after the check", |c| {
                has(c, "section:polisen", "efter kontrollen")
            })
            .await;
        assert!(client.closed.is_none());
        assert!(!has(client, "section:polisen", FORGED));
    }

    // When the rooms unload, the snapshot holds only what the log holds.
    for client in [school_client, watcher, police] {
        client.close().await;
    }
    for node in &addrs {
        let node = *node;
        eventually("every room unloaded", || async move {
            metric_of(node, "protokoll_rooms_open").await == 0
        })
        .await;
    }
    let pool = sqlx::PgPool::connect(&site.db.url).await.unwrap();
    let upto: i64 = sqlx::query_scalar("SELECT upto FROM doc_snapshots WHERE meeting_id = $1")
        .bind(m.as_uuid())
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let head = log_head(&site.db, m).await;
    assert!(upto <= head, "snapshot up to {upto}, log head {head}");
    let stored = stored_doc(&db.docs, m).await;
    let polisen = crate::helpers::fragment_text(&stored, "section:polisen");
    assert!(!polisen.contains(FORGED), "{polisen}");
    assert!(polisen.contains("efter attacken"), "{polisen}");
    site.stop().await;
}

/// Keys rotated while the nodes run: messages keep flowing, signed with the
/// new key once the nodes have it; a key retired by the next rotation is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_while_nodes_run_and_a_retired_key_is_refused() {
    init_logs();
    let site = Site::start().await;
    let db = site.database().await;
    site.subscribed(true).await;
    let (meeting, scribe) = writable_meeting(&db, "Nycklar").await;
    let m = meeting.id;
    let addrs = site.addrs.clone();
    let url = site.redis.url();
    let keys = db.dir.cluster_keys().unwrap();
    let first = keys.active().await.unwrap();
    assert_eq!(first.len(), 1, "the first node created one key");
    let first = first.into_iter().next().unwrap();
    let channel = format!("protokoll:meeting:{m}");
    let mut seen = spy(&url, std::slice::from_ref(&channel)).await;
    let mut a = Client::synced(addrs[0], m, &scribe).await;
    let mut b = Client::synced(addrs[1], m, &scribe).await;

    let mut flow = Flow {
        seen: &mut seen,
        round: 0,
    };
    flow.under(first.id, &mut a, &mut b).await;

    let rotate = |args: &[&str]| {
        let out = Cli::bare()
            .args(["cluster", "rotate-key"])
            .args(args)
            .env("PROTOKOLL_DATABASE_URL", &site.db.url)
            .env("PROTOKOLL_REDIS_URL", &url)
            .run();
        let stderr = out.stderr.clone();
        assert!(out.ok, "{stderr}");
        assert!(
            !stderr.contains(&url),
            "the Redis URL is not printed: {stderr}"
        );
        out.text().trim().parse::<i64>().unwrap()
    };
    let second = rotate(&[]);
    flow.under(second, &mut a, &mut b).await;
    assert_eq!(
        ids(&keys).await,
        vec![second, first.id],
        "the first key stays accepted until the next rotation"
    );
    let third = rotate(&[]);
    assert_eq!(
        ids(&keys).await,
        vec![third, second],
        "the first is retired"
    );
    flow.under(third, &mut a, &mut b).await;

    // A message under the retired key (its secret read from Postgres) is
    // refused by every node and changes nothing.
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for node in &addrs {
            v.push(refused(*node, "unknown_key").await);
        }
        v
    };
    let head = log_head(&site.db, m).await;
    let event = json!({
        "kind": "updates", "meeting": m, "first": head + 1, "last": head + 1,
        "updates": [STANDARD.encode(forged_update("polis", "gammal nyckel"))],
        "owners": [], "ownership": false,
    });
    let old = envelope::seal(
        first.id,
        &first.secret,
        &channel,
        Uuid::new_v4(),
        1,
        now_ms(),
        event.to_string().as_bytes(),
    );
    let scribe_user = db
        .dir
        .user_by_username(&protokoll::people::Username::parse("scribe").unwrap())
        .await
        .unwrap()
        .unwrap();
    let account = json!({"kind": "account", "who": "user", "id": scribe_user.id,
        "code": 4401, "reason": "retired key"});
    let old_account = envelope::seal(
        first.id,
        &first.secret,
        "protokoll:account",
        Uuid::new_v4(),
        1,
        now_ms(),
        account.to_string().as_bytes(),
    );
    publish(&url, &channel, &old).await;
    publish(&url, "protokoll:account", &old_account).await;
    // Nodes 1 and 2 hold the meeting (its channel and the account
    // channel), node 3 only the account channel.
    for (i, node) in addrs.iter().enumerate() {
        let expected = before[i] + if i < 2 { 2 } else { 1 };
        eventually("the retired key refused", || async move {
            refused(*node, "unknown_key").await == expected
        })
        .await;
    }
    // A key that leaked: every other one retired at once.
    let fourth = rotate(&["--retire-others"]);
    assert_eq!(ids(&keys).await, vec![fourth]);
    flow.under(fourth, &mut a, &mut b).await;
    for client in [&a, &b] {
        assert!(!has(client, "section:polis", "gammal nyckel"));
    }
    a.close().await;
    b.close().await;
    site.stop().await;
}

/// Keystrokes between two nodes, watched on Redis.
struct Flow<'a> {
    seen: &'a mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    round: u32,
}

impl Flow<'_> {
    /// Writes through both nodes until each has published under `key`;
    /// every keystroke must arrive on the other node meanwhile.
    async fn under(&mut self, key: i64, a: &mut Client, b: &mut Client) {
        let started = Instant::now();
        let mut signed = [false, false];
        while !signed.iter().all(|s| *s) {
            assert!(started.elapsed() < DEADLINE, "no message under key {key}");
            self.round += 1;
            for (i, signed) in signed.iter_mut().enumerate() {
                let (from, to) = if i == 0 {
                    (&mut *a, &mut *b)
                } else {
                    (&mut *b, &mut *a)
                };
                let text = format!("runda {} från {i}", self.round);
                from.write("section:polis", &text).await;
                to.until("a keystroke across nodes", |c| {
                    has(c, "section:polis", &text)
                })
                .await;
                let (_, payload) = captured(self.seen, "the keystroke on Redis", |_, body| {
                    body["event"]["kind"] == "updates"
                })
                .await;
                *signed |= key_id_of(&payload) == Some(key);
            }
        }
    }
}

async fn ids(keys: &ClusterKeys) -> Vec<i64> {
    keys.active()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect()
}

/// A snapshot that claims a position past the log's head is refused and
/// changes nothing (both backends): the positions it claims would count
/// as covered, and the updates later numbered there would be skipped.
#[tokio::test]
async fn a_snapshot_past_the_log_head_is_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let database = db.database().await;
        let meeting = create_meeting(&database, "Ögonblicksbild").await.id;
        let update = forged_update("polis", "x");
        let head = database
            .docs
            .append_updates(&[protokoll::store::AppendBatch {
                meeting,
                updates: vec![update.clone().into()],
            }])
            .await
            .unwrap()[0];
        let past = database
            .docs
            .write_snapshot(meeting, &update, head + 10)
            .await;
        assert!(
            matches!(
                past,
                Err(protokoll::store::StoreError::SnapshotPastLog { .. })
            ),
            "{past:?}"
        );
        let stored = database.docs.load_document(meeting).await.unwrap();
        assert!(stored.snapshot.is_none(), "nothing written");
        database
            .docs
            .write_snapshot(meeting, &update, head)
            .await
            .expect("up to the head is fine");
        database.close().await;
    }
}

/// The keys command needs Postgres, and says so.
#[test]
fn rotating_keys_on_sqlite_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = Cli::bare()
        .arg("--database-url")
        .arg(format!("sqlite:{}", dir.path().join("p.db").display()))
        .args(["cluster", "rotate-key"])
        .run();
    assert!(!out.ok);
    let stderr = out.stderr;
    assert!(stderr.contains("Postgres"), "{stderr}");
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Nodes whose Redis is on another host speak TLS to it: `rediss://` with
/// the password, and the private CA that signed Redis' certificate
/// (`--redis-ca-file`). A keystroke crosses from one node to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_through_redis_over_tls_with_a_private_ca() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=Protokoll test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "redis.key",
            "-out",
            "redis.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(d.join("san.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "redis.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "redis.crt",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    );
    let port = crate::cluster::free_port();
    let password = format!("pw-{}", Uuid::new_v4().simple());
    let _redis = tokio::process::Command::new("redis-server")
        .current_dir(d)
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "redis.crt",
            "--tls-key-file",
            "redis.key",
        ])
        .args(["--tls-auth-clients", "no", "--requirepass", &password])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    tokio::time::timeout(DEADLINE, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("Redis listens in time");

    let db = TestDb::new(Backend::Postgres).await;
    let database = db.database().await;
    let url = format!("rediss://:{password}@localhost:{port}/");
    let ca = d.join("ca.crt");
    let args = [
        "--redis-url",
        url.as_str(),
        "--redis-ca-file",
        ca.to_str().unwrap(),
    ];
    let stderr = || {
        if std::env::var_os("TEST_LOG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        }
    };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            crate::helpers::ProcessServer::start_command(&db, &[], &args, stderr(), "info").await,
        );
    }
    for node in &nodes {
        let addr = node.addr;
        eventually("subscribed to Redis over TLS", || async move {
            metric_of(addr, "protokoll_cluster_redis_connected").await == 1
        })
        .await;
    }
    let (meeting, scribe) = writable_meeting(&database, "TLS").await;
    let mut a = Client::synced(nodes[0].addr, meeting.id, &scribe).await;
    let mut b = Client::synced(nodes[1].addr, meeting.id, &scribe).await;
    a.write("section:polis", "krypterad väg").await;
    b.until("the keystroke through Redis over TLS", |c| {
        has(c, "section:polis", "krypterad väg")
    })
    .await;
    a.close().await;
    b.close().await;
    for node in nodes {
        node.terminate().await;
    }
}

/// Reads `client` (answering pings) until the server closes it.
fn closed_later(mut client: Client) -> tokio::task::JoinHandle<(u16, String)> {
    tokio::spawn(async move { client.closed_by_server().await })
}

/// A message lost with Redis up is made up for all the same. Here nothing
/// is published at all, as when a node's message never left it: the
/// section's owner changed in the database and the log moved; a token was
/// revoked in the database. Every node reads its meetings' log heads every
/// 2 s and catches up (with the ownership), and rechecks its connections
/// every ping interval (1 s here), Redis up or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_lost_message_carried_reaches_every_node_with_redis_up() {
    init_logs();
    let site = Site::start_with(&["--ping-interval-secs", "1"]).await;
    let db = site.database().await;
    site.subscribed(true).await;
    let (meeting, scribe) = writable_meeting(&db, "Förlorat").await;
    let m = meeting.id;
    agency_section(&db, m, "uppdrag", "Polis").await;
    db.dir.create_agency("Skola").await.unwrap();
    let (_, police_token) = agency_member(&db, m, "polis2", "Polis").await;
    let (member, member_token) = user_with_token(&db, "medlem2", false).await;
    db.dir
        .set_participant(m, member.id, Role::Member)
        .await
        .unwrap();
    let addrs = site.addrs.clone();
    let mut watchers = Vec::new();
    for addr in &addrs {
        watchers.push(Client::synced(*addr, m, &scribe).await);
    }
    let police = Client::synced(addrs[0], m, &police_token).await;

    // The agenda change a lost message carried: the database has the new
    // owner, the log one more update.
    let skola = db.dir.agency_by_name("Skola").await.unwrap().unwrap();
    let section = db
        .dir
        .sections(m)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id.as_str() == "uppdrag")
        .unwrap();
    db.dir
        .update_section(
            m,
            &Section {
                owner: SectionOwner::Agency {
                    agency_id: skola.id,
                },
                ..section
            },
        )
        .await
        .unwrap();
    db.docs
        .append_updates(&[protokoll::store::AppendBatch {
            meeting: m,
            updates: vec![forged_update("polis", "ur loggen").into()],
        }])
        .await
        .unwrap();
    let appended = Instant::now();
    // Every client is read at once (the server pings every second and
    // drops a client silent for two).
    let mut reading = Vec::new();
    for mut client in watchers.into_iter().chain([police]) {
        reading.push(tokio::spawn(async move {
            client
                .until("the update no message announced", |c| {
                    has(c, "section:polis", "ur loggen")
                })
                .await;
            client
        }));
    }
    let mut clients = Vec::new();
    for task in reading {
        clients.push(task.await.unwrap());
    }
    let took = appended.elapsed();
    let mut police = clients.pop().unwrap();
    for watcher in clients {
        watcher.close().await;
    }
    eprintln!("figure: an update no message announced reached every node in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "within the head check and the hole wait: {took:?}"
    );
    // The node took the new owner with it.
    police.write("section:uppdrag", "inte längre vår").await;
    let (code, _) = police.closed_by_server().await;
    assert_eq!(code, 4403);

    // A revocation nobody announced closes the sockets within a ping
    // interval or two.
    let mut sockets = Vec::new();
    for addr in &addrs {
        sockets.push(closed_later(Client::synced(*addr, m, &member_token).await));
    }
    let token_id = db.dir.list_tokens(member.id).await.unwrap()[0].id;
    assert!(db.dir.revoke_token(token_id, None).await.unwrap());
    let revoked = Instant::now();
    for socket in sockets {
        let (code, reason) = socket.await.unwrap();
        assert_eq!((code, reason.as_str()), (4401, "sign-in no longer valid"));
    }
    let took = revoked.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    site.stop().await;
}
