//! One simulated client: a WebSocket connection speaking y-websocket or
//! Hocuspocus framing. Every client reads and decodes everything it gets;
//! writers also type on an open-loop schedule.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt, stream::SplitSink};
use rand::Rng;
use tokio::{
    net::TcpStream,
    sync::{Notify, Semaphore, mpsc, watch},
    time::MissedTickBehavior,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};
use yrs::Update;

use crate::{
    latency::Tracker,
    typist::Typist,
    wire::{Framing, Inbound, Protocol, write_string, write_var},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The writers' typing schedule, published by the scenario controller.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Updates per second per writer; 0 stops typing.
    pub rate: f64,
    /// Phase the measured sends are attributed to.
    pub phase: usize,
    /// Sends scheduled before this are warm-up: sent, not measured.
    pub record_from: Instant,
}

impl Schedule {
    pub fn idle() -> Self {
        Schedule {
            rate: 0.0,
            phase: 0,
            record_from: Instant::now(),
        }
    }
}

/// State shared by all clients of one run.
pub struct Run {
    pub tracker: Tracker,
    /// Clients that completed the sync handshake.
    pub synced: AtomicUsize,
    /// Clients that failed to connect or were refused before syncing.
    pub failed: AtomicUsize,
    /// Clients the server closed (or that errored) after syncing.
    pub dropped: AtomicUsize,
    /// Synced clients per meeting (a send is expected at all others).
    pub meeting_clients: Vec<AtomicU32>,
    pub notify: Notify,
    errors: Mutex<Vec<String>>,
}

impl Run {
    pub fn new(meetings: usize, phases: usize) -> Self {
        Run {
            tracker: Tracker::new(phases),
            synced: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            meeting_clients: (0..meetings).map(|_| AtomicU32::new(0)).collect(),
            notify: Notify::new(),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(e);
        }
    }

    /// The first few distinct errors clients ran into.
    pub fn errors(&self) -> Vec<String> {
        let mut e = self.errors.lock().unwrap().clone();
        e.dedup();
        e
    }
}

/// Everything one client needs to know.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub index: usize,
    pub meeting: usize,
    pub url: String,
    pub framing: Framing,
    pub token: Option<String>,
    pub client_id: u64,
    /// Some(root name) makes this client a writer into that root.
    pub section_root: Option<String>,
    pub awareness_every: Option<Duration>,
    pub connect_timeout: Duration,
}

/// How a client ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub synced: bool,
    pub error: Option<String>,
}

pub fn ws_config() -> WebSocketConfig {
    // Small eager buffers: most connections are idle; large messages (the
    // cold scenario's sync step 2) still fit, buffers grow on demand.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(512 << 20))
        .max_frame_size(Some(512 << 20))
}

/// Opens a WebSocket (TCP_NODELAY, as browsers do).
pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Ws> {
    let (ws, _resp) = tokio::time::timeout(
        timeout,
        connect_async_with_config(url, Some(ws_config()), true),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connect timed out after {timeout:?}"))??;
    Ok(ws)
}

/// Writes queued frames; the typing schedule never waits for the socket.
pub fn spawn_sink(
    mut sink: SplitSink<Ws, Message>,
) -> (mpsc::UnboundedSender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(16);
        while rx.recv_many(&mut batch, 64).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    });
    (tx, task)
}

/// A y-protocols awareness update for one client: count, then client id,
/// clock and JSON state.
pub fn awareness_update(client: u64, clock: u32, json: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(json.len() + 16);
    write_var(&mut buf, 1);
    write_var(&mut buf, client);
    write_var(&mut buf, clock as u64);
    write_string(&mut buf, json);
    buf
}

/// Runs one client until `stop` turns true or the connection ends.
pub async fn run_client(
    spec: ClientSpec,
    run: Arc<Run>,
    mut schedule: watch::Receiver<Schedule>,
    mut stop: watch::Receiver<bool>,
    connecting: Arc<Semaphore>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let permit = connecting.acquire_owned().await.ok();
    if *stop.borrow() {
        return outcome;
    }
    let ws = match connect(&spec.url, spec.connect_timeout).await {
        Ok(ws) => ws,
        Err(e) => {
            run.failed.fetch_add(1, Ordering::Relaxed);
            run.error(format!("connect: {e}"));
            run.notify.notify_waiters();
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let (sink, mut stream) = ws.split();
    let (out, sink_task) = spawn_sink(sink);
    let mut permit = permit;

    let framing = &spec.framing;
    let mut typist = spec
        .section_root
        .as_deref()
        .map(|root| Typist::new(spec.client_id, root));
    let token = spec.token.clone().unwrap_or_default();
    // Hocuspocus: auth first (the server queues everything else until the
    // token is accepted), then sync step 1, as the provider does.
    if let Some(auth) = framing.auth(&token) {
        let _ = out.send(auth);
    }
    let sv = typist
        .as_ref()
        .map(Typist::state_vector)
        .unwrap_or_else(|| vec![0]);
    let _ = out.send(framing.sync_step_1(&sv));

    // Hocuspocus acks every sync step 2 and update in order: what each ack
    // is for (Some = a measured update: phase and scheduled time).
    let expects_acks = framing.protocol == Protocol::Hocuspocus;
    let mut acks: VecDeque<Option<(usize, Instant)>> = VecDeque::new();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut synced = false;
    let mut interval: Option<Ticks> = None;
    let mut current = *schedule.borrow_and_update();
    let mut awareness = spec.awareness_every.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    let mut awareness_clock: u32 = 0;
    let meeting_clients = &run.meeting_clients[spec.meeting];

    let end: Result<(), String> = loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break Ok(());
                }
            }
            changed = schedule.changed(), if typist.is_some() => {
                if changed.is_err() {
                    break Ok(());
                }
                current = *schedule.borrow_and_update();
                interval = if synced { writer_interval(current.rate) } else { None };
            }
            scheduled = next_send(&mut interval) => {
                let Some(t) = typist.as_mut() else { continue };
                let typed = t.type_char();
                let phase = (scheduled >= current.record_from).then_some(current.phase);
                let receivers = meeting_clients.load(Ordering::Relaxed).saturating_sub(1);
                run.tracker.record_send(spec.client_id, typed.clock, scheduled, phase, receivers);
                if expects_acks {
                    acks.push_back(phase.map(|p| (p, scheduled)));
                }
                let _ = out.send(framing.update(&typed.update));
            }
            _ = tick(&mut awareness) => {
                awareness_clock += 1;
                let json = format!(
                    r##"{{"user":{{"name":"loadgen {}","color":"#30bced"}}}}"##,
                    spec.index
                );
                let _ = out.send(framing.awareness(&awareness_update(spec.client_id, awareness_clock, &json)));
            }
            frame = stream.next() => {
                let data = match frame {
                    None => break Err("connection closed by server".into()),
                    Some(Err(e)) => break Err(format!("websocket: {e}")),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(c))) => {
                        break Err(match c {
                            Some(c) => format!("closed by server: {} {}", u16::from(c.code), c.reason),
                            None => "closed by server".into(),
                        });
                    }
                    Some(Ok(_)) => continue,
                };
                let now = Instant::now();
                let msgs = match framing.decode(&data) {
                    Ok(m) => m,
                    Err(e) => break Err(e.to_string()),
                };
                let mut fail = None;
                for msg in msgs {
                    match msg {
                        Inbound::SyncStep1(sv) => {
                            let diff = typist
                                .as_ref()
                                .map(|t| t.diff(sv))
                                .unwrap_or_else(|| Update::EMPTY_V1.to_vec());
                            if expects_acks {
                                acks.push_back(None);
                            }
                            let _ = out.send(framing.sync_step_2(&diff));
                        }
                        Inbound::SyncStep2(u) => {
                            run.tracker.on_update(spec.client_id, &mut seen, u, now);
                            if !synced {
                                synced = true;
                                permit.take();
                                meeting_clients.fetch_add(1, Ordering::Relaxed);
                                run.synced.fetch_add(1, Ordering::Relaxed);
                                run.notify.notify_waiters();
                                if typist.is_some() {
                                    current = *schedule.borrow_and_update();
                                    interval = writer_interval(current.rate);
                                }
                            }
                        }
                        Inbound::Update(u) => {
                            run.tracker.on_update(spec.client_id, &mut seen, u, now);
                        }
                        Inbound::SyncStatus(_) => {
                            if let Some(Some((phase, scheduled))) = acks.pop_front() {
                                run.tracker.record_ack(phase, scheduled, now);
                            }
                        }
                        Inbound::TokenRequest => {
                            if let Some(auth) = framing.auth(&token) {
                                let _ = out.send(auth);
                            }
                        }
                        Inbound::Ping => {
                            let _ = out.send(Framing::pong());
                        }
                        Inbound::PermissionDenied(reason) => {
                            fail = Some(format!("permission denied: {reason}"));
                        }
                        Inbound::Close(reason) => {
                            fail = Some(format!("closed by server: {reason}"));
                        }
                        Inbound::Authenticated(_)
                        | Inbound::Awareness(_)
                        | Inbound::QueryAwareness
                        | Inbound::Stateless(_)
                        | Inbound::Other(_) => {}
                    }
                }
                if let Some(f) = fail {
                    break Err(f);
                }
            }
        }
    };

    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(3), sink_task).await;
    if let Err(e) = end {
        if synced {
            run.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            run.failed.fetch_add(1, Ordering::Relaxed);
        }
        run.error(e.clone());
        outcome.error = Some(e);
    }
    if synced {
        meeting_clients.fetch_sub(1, Ordering::Relaxed);
    }
    run.notify.notify_waiters();
    outcome.synced = synced;
    outcome
}

/// The scheduled send instants of one writer (see `clock`).
type Ticks = tokio::sync::mpsc::UnboundedReceiver<Instant>;

/// An open-loop schedule: fixed period, first send at a random offset so
/// writers do not fire in lockstep; missed sends queue up and go at once,
/// so the schedule is kept whatever happens to the socket.
fn writer_interval(rate: f64) -> Option<Ticks> {
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let offset = period.mul_f64(rand::rng().random::<f64>());
    Some(crate::clock::every(period, Instant::now() + offset))
}

async fn next_send(ticks: &mut Option<Ticks>) -> Instant {
    match ticks {
        Some(t) => match t.recv().await {
            Some(at) => at,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) -> tokio::time::Instant {
    match interval {
        Some(i) => i.tick().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{
        sync::awareness::AwarenessUpdate,
        updates::{decoder::Decode, encoder::Encode},
    };

    #[test]
    fn awareness_update_matches_yrs() {
        let bytes = awareness_update(77, 3, r#"{"user":{"name":"x"}}"#);
        let decoded = AwarenessUpdate::decode_v1(&bytes).unwrap();
        assert_eq!(decoded.encode_v1(), bytes);
        let entry = decoded.clients.values().next().unwrap();
        assert_eq!(entry.clock, 3);
        assert_eq!(&*entry.json, r#"{"user":{"name":"x"}}"#);
    }

    #[tokio::test]
    async fn writer_interval_queues_missed_ticks() {
        let mut i = writer_interval(100.0).unwrap();
        let first = i.recv().await.unwrap();
        std::thread::sleep(Duration::from_millis(35));
        // The missed ticks are queued: they come at once, each with its own
        // scheduled time 10 ms apart.
        let a = i.recv().await.unwrap();
        let b = i.recv().await.unwrap();
        assert_eq!(a - first, Duration::from_millis(10));
        assert_eq!(b - a, Duration::from_millis(10));
        assert!(Instant::now() >= b + Duration::from_millis(10));
        assert!(writer_interval(0.0).is_none());
    }
}
