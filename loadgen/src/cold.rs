//! Scenario 5: cold load. Fill a meeting with a long editing trace, let the
//! server unload it, then time connect -> sync step 2 received, K times.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use futures::{StreamExt, stream::SplitStream};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use yrs::{
    ClientID, ReadTxn, StateVector, Transact, Update,
    updates::{decoder::Decode, encoder::Encode},
};

use crate::{
    Common,
    client::{connect, spawn_sink},
    report,
    setup::{self, Tokens},
    trace::{self, TraceFormat},
    wire::{Framing, Inbound},
};

#[derive(Args, Debug)]
pub struct ColdArgs {
    #[command(flatten)]
    pub common: Common,
    /// Trace to load into the meeting first (see `gen-trace`).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = TraceFormat::LenPrefixed)]
    pub trace_format: TraceFormat,
    /// Use this existing meeting (document name) instead of a new one.
    #[arg(long)]
    pub meeting: Option<String>,
    /// Measurements to take.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Seconds with no client connected before each measurement, so that
    /// the server unloads the document (ours: --room-grace-ms, 5 s).
    #[arg(long, default_value_t = 7.0)]
    pub unload_wait: f64,
    /// Trace updates merged into one message when uploading (1 = one
    /// message per operation, as typed).
    #[arg(long, default_value_t = 1)]
    pub upload_batch: usize,
    /// Seconds to wait for the server to hold the whole trace.
    #[arg(long, default_value_t = 1800.0)]
    pub upload_timeout: f64,
    /// The measuring client already holds this share of the trace (its
    /// first updates, between 0 and 1): it connects with their state
    /// vector instead of an empty one, as a client that was in the meeting
    /// earlier does, and the server answers with the rest. 0: an empty
    /// state vector.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        requires = "trace"
    )]
    pub holding: f64,
}

type Stream = SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// A bare client: no document of its own, just the handshake.
struct Conn {
    framing: Framing,
    stream: Stream,
    out: mpsc::UnboundedSender<Vec<u8>>,
    sink: tokio::task::JoinHandle<()>,
}

impl Conn {
    async fn open(common: &Common, doc: &str, token: Option<&str>) -> anyhow::Result<Conn> {
        let url = setup::connect_url(common.protocol, common.url_for(0), doc, token);
        let ws = connect(&url, Duration::from_secs_f64(common.connect_timeout)).await?;
        let (sink, stream) = ws.split();
        let (out, sink) = spawn_sink(sink);
        let framing = Framing::new(common.protocol, doc);
        if let Some(auth) = framing.auth(token.unwrap_or_default()) {
            let _ = out.send(auth);
        }
        Ok(Conn {
            framing,
            stream,
            out,
            sink,
        })
    }

    /// Sends sync step 1 with `state_vector` (v1 encoded) and returns the
    /// sync step 2 payload (what the server holds beyond it).
    async fn sync(&mut self, state_vector: &[u8]) -> anyhow::Result<Vec<u8>> {
        let _ = self.out.send(self.framing.sync_step_1(state_vector));
        loop {
            let data = match self.stream.next().await {
                None => bail!("connection closed before sync step 2"),
                Some(Err(e)) => bail!("websocket: {e}"),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(c))) => bail!("closed before sync step 2: {c:?}"),
                Some(Ok(_)) => continue,
            };
            for msg in self.framing.decode(&data)? {
                match msg {
                    Inbound::SyncStep2(u) => return Ok(u.to_vec()),
                    Inbound::SyncStep1(_) => {
                        let _ = self.out.send(self.framing.sync_step_2(Update::EMPTY_V1));
                    }
                    Inbound::Ping => {
                        let _ = self.out.send(Framing::pong());
                    }
                    Inbound::PermissionDenied(r) => bail!("permission denied: {r}"),
                    Inbound::Close(r) => bail!("closed by server: {r}"),
                    _ => {}
                }
            }
        }
    }

    async fn close(self) {
        drop(self.out);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.sink).await;
    }
}

/// A state vector with no clients, v1 encoded.
const EMPTY_STATE_VECTOR: &[u8] = &[0];

/// What a client holding the first `fraction` of `updates` knows: its state
/// vector (v1 encoded) and the number of updates it holds.
fn held_state(updates: &[Vec<u8>], fraction: f64) -> anyhow::Result<(Vec<u8>, usize)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!("--holding must be between 0 and 1 (exclusive)");
    }
    let n = ((updates.len() as f64 * fraction).round() as usize).clamp(1, updates.len());
    // Applied to a document, as the client would hold them: merging 234,000
    // updates with `merge_updates_v1` did not finish in 7 minutes.
    let doc = yrs::Doc::new();
    {
        let mut txn = doc.transact_mut();
        for u in &updates[..n] {
            txn.apply_update(Update::decode_v1(u).context("undecodable update")?)
                .context("applying the held part of the trace")?;
        }
    }
    let sv = doc.transact().state_vector();
    Ok((sv.encode_v1(), n))
}

/// The insertions a sync step 2 answering `state_vector` must contain: those
/// of `expected` that end beyond what the state vector holds.
fn beyond(expected: &HashMap<u64, u32>, state_vector: &[u8]) -> anyhow::Result<HashMap<u64, u32>> {
    let sv = StateVector::decode_v1(state_vector).context("undecodable state vector")?;
    Ok(expected
        .iter()
        .filter(|&(&client, &end)| end > sv.get(&ClientID::new(client)))
        .map(|(&c, &e)| (c, e))
        .collect())
}

/// Highest clock per client that `update` inserts.
fn insert_ends(update: &[u8], into: &mut HashMap<u64, u32>) -> anyhow::Result<()> {
    let u = Update::decode_v1(update).context("undecodable update")?;
    for (client, ranges) in u.insertions(true).iter() {
        if let Some(end) = ranges.iter().map(|r| r.end).max() {
            let e = into.entry(client.get()).or_insert(0);
            *e = (*e).max(end);
        }
    }
    Ok(())
}

/// Whether a sync step 2 holds every insertion of the trace.
fn covers(step2: &[u8], expected: &HashMap<u64, u32>) -> bool {
    let mut got = HashMap::new();
    if insert_ends(step2, &mut got).is_err() {
        return false;
    }
    expected
        .iter()
        .all(|(c, end)| got.get(c).is_some_and(|g| g >= end))
}

async fn upload(
    a: &ColdArgs,
    doc: &str,
    token: Option<&str>,
    updates: Vec<Vec<u8>>,
    expected: &HashMap<u64, u32>,
) -> anyhow::Result<(f64, usize)> {
    let c = &a.common;
    let mut conn = Conn::open(c, doc, token).await?;
    conn.sync(EMPTY_STATE_VECTOR).await?;
    // Keep reading (acks, echoes, pings) so the server never waits for us.
    let acks = Arc::new(AtomicU64::new(0));
    let Conn {
        framing,
        mut stream,
        out,
        sink,
    } = conn;
    let reader = {
        let acks = acks.clone();
        let framing = framing.clone();
        let out = out.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Binary(b) = msg
                    && let Ok(msgs) = framing.decode(&b)
                {
                    for m in msgs {
                        match m {
                            Inbound::SyncStatus(_) => {
                                acks.fetch_add(1, Ordering::Relaxed);
                            }
                            Inbound::Ping => {
                                let _ = out.send(Framing::pong());
                            }
                            _ => {}
                        }
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let batch = a.upload_batch.max(1);
    let mut messages = 0;
    for chunk in updates.chunks(batch) {
        let payload = if chunk.len() == 1 {
            chunk[0].clone()
        } else {
            yrs::merge_updates_v1(chunk.iter().map(Vec::as_slice))
                .context("merging trace updates")?
        };
        if out.send(framing.update(&payload)).is_err() {
            bail!("upload connection closed");
        }
        messages += 1;
    }
    drop(updates);
    eprintln!("upload: {messages} messages queued; waiting until the server holds them all");
    let deadline = started + Duration::from_secs_f64(a.upload_timeout);
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut check = Conn::open(c, doc, token).await?;
        let step2 = check.sync(EMPTY_STATE_VECTOR).await;
        check.close().await;
        if covers(&step2?, expected) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the server did not hold the whole trace after {} s",
                a.upload_timeout
            );
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "upload: {:.0} s{}",
                started.elapsed().as_secs_f64(),
                if framing.protocol == crate::wire::Protocol::Hocuspocus {
                    format!(", {} acks", acks.load(Ordering::Relaxed))
                } else {
                    String::new()
                }
            );
            last_print = Instant::now();
        }
    }
    let took = started.elapsed().as_secs_f64();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), sink).await;
    reader.abort();
    Ok((took, messages))
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    /// Connect (TCP + WebSocket upgrade) done, ms after start.
    connect_ms: f64,
    /// Sync step 2 received, ms after start (start = before TCP connect).
    step2_ms: f64,
    step2_bytes: usize,
    complete: bool,
}

async fn measure(
    c: &Common,
    doc: &str,
    token: Option<&str>,
    state_vector: &[u8],
    expected: &HashMap<u64, u32>,
) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    let mut conn = Conn::open(c, doc, token).await?;
    let connected = t0.elapsed();
    let step2 = conn.sync(state_vector).await?;
    let done = t0.elapsed();
    conn.close().await;
    Ok(Sample {
        connect_ms: connected.as_secs_f64() * 1000.0,
        step2_ms: done.as_secs_f64() * 1000.0,
        step2_bytes: step2.len(),
        complete: expected.is_empty() || covers(&step2, expected),
    })
}

pub async fn run(a: ColdArgs) -> anyhow::Result<()> {
    let c = &a.common;
    let (doc, token) = if c.as_agencies {
        // The trace types into `section:trace`: one agency owns it.
        let base = c
            .create_meetings_via
            .as_deref()
            .context("--as-agencies needs --create-meetings-via")?;
        if a.meeting.is_some() {
            bail!("--as-agencies creates its own meeting; drop --meeting");
        }
        let agencies = setup::Agencies::provision(base, &[trace::SECTION.to_owned()]).await?;
        let doc = agencies.meetings(base, 1, "cold").await?.remove(0);
        (doc, agencies.tokens(1).get(0).map(|t| t.token.clone()))
    } else {
        let tokens = Tokens::load(c.token_file.as_deref())?;
        let token = tokens.get(0).map(|t| t.token.clone());
        let doc = match &a.meeting {
            Some(m) => m.clone(),
            None => setup::meetings(1, c.create_meetings_via.as_deref(), "cold")
                .await?
                .remove(0),
        };
        (doc, token)
    };
    eprintln!("document: {doc}");
    let mut expected = HashMap::new();
    let mut upload_info = serde_json::Value::Null;
    let mut state_vector = EMPTY_STATE_VECTOR.to_vec();
    let mut holding_info = serde_json::Value::Null;
    if let Some(path) = &a.trace {
        let updates = trace::read(path, a.trace_format)?;
        for u in &updates {
            insert_ends(u, &mut expected)?;
        }
        let n = updates.len();
        let bytes: usize = updates.iter().map(Vec::len).sum();
        eprintln!("trace: {n} updates, {bytes} bytes");
        if a.holding > 0.0 {
            let (sv, held) = held_state(&updates, a.holding)?;
            eprintln!(
                "the measuring client holds the first {held} updates (state vector of {} bytes)",
                sv.len()
            );
            holding_info = json!({
                "fraction": a.holding, "updates": held, "state_vector_bytes": sv.len(),
            });
            state_vector = sv;
        }
        let (took, messages) = upload(&a, &doc, token.as_deref(), updates, &expected).await?;
        eprintln!("upload: done in {took:.1} s");
        upload_info = json!({
            "updates": n, "bytes": bytes, "messages": messages, "seconds": took,
            "updates_per_s": n as f64 / took,
        });
    }

    // The answer must bring what the measuring client lacks.
    let expected = beyond(&expected, &state_vector)?;
    let mut samples = Vec::with_capacity(a.repeat);
    for i in 0..a.repeat {
        if a.unload_wait > 0.0 {
            eprintln!("waiting {} s for the document to unload", a.unload_wait);
            tokio::time::sleep(Duration::from_secs_f64(a.unload_wait)).await;
        }
        let s = measure(c, &doc, token.as_deref(), &state_vector, &expected).await?;
        eprintln!(
            "run {i}: sync step 2 after {:.1} ms ({} bytes{})",
            s.step2_ms,
            s.step2_bytes,
            if s.complete { "" } else { ", INCOMPLETE" }
        );
        samples.push(s);
    }
    if samples.is_empty() {
        bail!("--repeat must be at least 1");
    }
    let mut times: Vec<f64> = samples.iter().map(|s| s.step2_ms).collect();
    times.sort_by(f64::total_cmp);
    let min = times[0];
    let max = times[times.len() - 1];
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };

    report::heading(&format!(
        "cold: connect -> sync step 2, {} runs, {}{}",
        samples.len(),
        c.protocol,
        if a.holding > 0.0 {
            format!(", client holding {} of the trace", a.holding)
        } else {
            String::new()
        }
    ));
    let mut rows: Vec<(String, String)> = vec![("document".into(), doc.clone())];
    if let Some(u) = upload_info.as_object() {
        rows.push((
            "trace upload".into(),
            format!(
                "{} updates in {} messages, {:.1} s ({:.0} updates/s)",
                u["updates"],
                u["messages"],
                u["seconds"].as_f64().unwrap_or(0.0),
                u["updates_per_s"].as_f64().unwrap_or(0.0)
            ),
        ));
    }
    rows.push((
        "sync step 2".into(),
        format!("min {min:.1} ms  median {median:.1} ms  max {max:.1} ms"),
    ));
    rows.push((
        "step 2 size".into(),
        format!("{} bytes", samples[0].step2_bytes),
    ));
    rows.push((
        "runs".into(),
        samples
            .iter()
            .map(|s| format!("{:.1} (connect {:.1})", s.step2_ms, s.connect_ms))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if samples.iter().any(|s| !s.complete) {
        rows.push((
            "WARNING".into(),
            "some sync step 2 answers lacked part of the trace".into(),
        ));
    }
    report::kv(&rows);
    report::result(&json!({
        "scenario": "cold",
        "protocol": c.protocol,
        "url": c.url,
        "document": doc,
        "upload": upload_info,
        "unload_wait_s": a.unload_wait,
        "holding": holding_info,
        "step2_ms": {"min": min, "median": median, "max": max},
        "samples": samples,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use yrs::{Doc, ReadTxn, Transact};

    use super::*;

    fn trace(ops: u64) -> Vec<Vec<u8>> {
        let args = trace::GenTraceArgs {
            out: PathBuf::new(),
            ops,
            delete_ratio: 0.3,
            jump_ratio: 0.05,
            root: format!("section:{}", trace::SECTION),
            client_id: 7,
            seed: 3,
        };
        let mut updates = Vec::new();
        trace::build(&args, |u| {
            updates.push(u.to_vec());
            Ok(())
        })
        .unwrap();
        updates
    }

    #[test]
    fn a_client_holding_half_the_trace_needs_only_the_rest() {
        let updates = trace(1000);
        let mut expected = HashMap::new();
        for u in &updates {
            insert_ends(u, &mut expected).unwrap();
        }
        let (sv, held) = held_state(&updates, 0.5).unwrap();
        assert_eq!(held, 501);

        // What a server holding the whole trace answers to that state vector.
        let server = Doc::new();
        for u in &updates {
            server
                .transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
        }
        let answer = server
            .transact()
            .encode_state_as_update_v1(&StateVector::decode_v1(&sv).unwrap());
        let whole = server
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(answer.len() < whole.len());

        let rest = beyond(&expected, &sv).unwrap();
        assert!(covers(&answer, &rest));
        // An answer from a server that lost the document is caught.
        assert!(!rest.is_empty());
        assert!(!covers(Update::EMPTY_V1, &rest));
    }

    #[test]
    fn holding_must_be_a_proper_fraction() {
        let updates = trace(10);
        assert!(held_state(&updates, 0.0).is_err());
        assert!(held_state(&updates, 1.0).is_err());
    }
}
