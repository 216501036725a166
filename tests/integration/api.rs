//! The meetings JSON API, health, readiness and metrics.

use serde_json::{Value, json};

use crate::helpers::*;

async fn meetings_can_be_created_listed_and_fetched(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let http = server.http_client();

    let created = http
        .post(server.http("/api/meetings"))
        .json(&json!({ "title": "  Lokala Brå 2018-03-09 ", "date": "2018-03-09", "time": "09:00", "place": "Telefonvägen 30" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["title"], "Lokala Brå 2018-03-09");
    assert_eq!(created["date"], "2018-03-09");
    let id = created["id"].as_str().unwrap();

    let list: Value = get_json(&http, server.http("/api/meetings")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id);

    let one = http
        .get(server.http(&format!("/api/meetings/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap();
    for field in ["id", "title", "created_at", "date", "place"] {
        assert_eq!(one[field], created[field], "{field}");
    }
    assert_eq!(
        one["your_role"], "secretary",
        "the creator is the secretary"
    );
    assert_eq!(one["agenda"], json!([]));
    assert_eq!(one["participants"].as_array().unwrap().len(), 1);
    server.stop().await;
}

async fn bad_requests_get_clear_errors_and_change_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let http = server.http_client();
    let cases = [
        ("{not json", 400, "bad_request"),
        (r#"{"title": ""}"#, 422, "invalid"),
        (r#"{"title": 5}"#, 422, "invalid"),
        (r#"{"title": "x", "extra": 1}"#, 422, "invalid"),
        (r#"{"title": "x", "date": "9 mars"}"#, 422, "invalid"),
    ];
    for (body, status, code) in cases {
        let response = http
            .post(server.http("/api/meetings"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        assert!(
            error["error"]["message"].as_str().unwrap().len() > 3,
            "{body}"
        );
    }
    let missing = http
        .get(server.http(&format!("/api/meetings/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let list: Value = get_json(&http, server.http("/api/meetings")).await;
    assert_eq!(list, json!([]), "nothing was created");
    server.stop().await;
}

async fn health_readiness_and_metrics_answer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Metrics").await;
    let mut client = server.synced(meeting.id).await;
    client.write("section:polis", "hej").await;
    let mut other = server.synced(meeting.id).await;
    other
        .until("edit", |c| c.section("section:polis").contains("hej"))
        .await;

    let http = reqwest::Client::new();
    let health = http.get(server.http("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(server.http("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = get_text(&http, server.http("/metrics")).await;
    for name in [
        "protokoll_connections_open",
        "protokoll_rooms_open",
        "protokoll_updates_received_total",
        "protokoll_updates_applied_total",
        "protokoll_store_commit_seconds_bucket",
        "protokoll_bytes_in_total",
        "protokoll_bytes_out_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
    server.stop().await;
}

crate::on_both_backends!(
    meetings_can_be_created_listed_and_fetched,
    bad_requests_get_clear_errors_and_change_nothing,
    health_readiness_and_metrics_answer,
);
