//! The fleet of clients and the `fanout`, `ramp` and `idle` scenarios.

use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::{
    Common, FanoutArgs, IdleArgs, RampArgs,
    client::{ClientSpec, Outcome, Run, Schedule, run_client},
    latency::{Percentiles, PhaseSnapshot, TimelineSecond},
    procstat, report,
    setup::{self, Tokens},
    wire::{Framing, Protocol},
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Distinct random Yjs client ids (31-bit, like Yjs' own).
pub fn client_ids(n: usize) -> Vec<u64> {
    let mut rng = rand::rng();
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let id = rng.random_range(1..(1u64 << 31));
        if seen.insert(id) {
            out.push(id);
        }
    }
    out
}

/// All clients of a run.
pub struct Fleet {
    pub run: Arc<Run>,
    pub total: usize,
    schedule: watch::Sender<Schedule>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
}

impl Fleet {
    /// Starts `clients_per_meeting` clients on every document; the first
    /// `writers_per_meeting` of each type into their own section.
    pub fn start(
        common: &Common,
        docs: &[String],
        clients_per_meeting: usize,
        writers_per_meeting: usize,
        phases: usize,
        tokens: Tokens,
    ) -> anyhow::Result<Fleet> {
        if writers_per_meeting > clients_per_meeting {
            bail!("--writers-per-meeting must not exceed --clients-per-meeting");
        }
        if tokens.len() > 0 {
            eprintln!(
                "{} tokens: each connection takes the next one",
                tokens.len()
            );
        }
        let total = docs.len() * clients_per_meeting;
        let run = Arc::new(Run::new(docs.len(), phases.max(1)));
        let (schedule, schedule_rx) = watch::channel(Schedule::idle());
        let (stop, stop_rx) = watch::channel(false);
        let connecting = Arc::new(Semaphore::new(common.connect_concurrency.max(1)));
        let ids = client_ids(total);
        let awareness_every = (common.awareness_every > 0.0).then(|| secs(common.awareness_every));
        let mut tasks = Vec::with_capacity(total);
        // Open clients meeting by meeting interleaved, so every meeting
        // fills up at the same pace.
        for k in 0..clients_per_meeting {
            for (m, doc) in docs.iter().enumerate() {
                // Tokens go meeting by meeting: the first C lines are the
                // users of the first meeting, and so on.
                let index = m * clients_per_meeting + k;
                let cred = tokens.get(index);
                let section_root = (k < writers_per_meeting).then(|| {
                    let section = cred
                        .and_then(|c| c.section.clone())
                        .unwrap_or_else(|| format!("w{k}"));
                    format!("section:{section}")
                });
                let token = cred.map(|c| c.token.clone());
                let spec = ClientSpec {
                    index,
                    meeting: m,
                    url: setup::connect_url(
                        common.protocol,
                        common.url_for(k),
                        doc,
                        token.as_deref(),
                    ),
                    framing: Framing::new(common.protocol, doc.clone()),
                    token,
                    client_id: ids[index],
                    section_root,
                    awareness_every,
                    connect_timeout: secs(common.connect_timeout),
                };
                tasks.push(tokio::spawn(run_client(
                    spec,
                    run.clone(),
                    schedule_rx.clone(),
                    stop_rx.clone(),
                    connecting.clone(),
                )));
            }
        }
        Ok(Fleet {
            run,
            total,
            schedule,
            stop,
            tasks,
        })
    }

    /// Waits until every client synced or failed (or the timeout passed);
    /// returns the number synced.
    pub async fn wait_synced(&self, timeout: Duration) -> usize {
        let start = Instant::now();
        let mut last_print = start;
        loop {
            let notified = self.run.notify.notified();
            let synced = self.run.synced.load(Ordering::Relaxed);
            let failed = self.run.failed.load(Ordering::Relaxed);
            if synced + failed >= self.total || start.elapsed() >= timeout {
                eprintln!(
                    "connected: {synced} synced, {failed} failed of {} in {:.1} s",
                    self.total,
                    start.elapsed().as_secs_f64()
                );
                return synced;
            }
            if last_print.elapsed() >= Duration::from_secs(2) {
                eprintln!(
                    "connecting: {synced} synced, {failed} failed of {}",
                    self.total
                );
                last_print = Instant::now();
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
        }
    }

    pub fn set_schedule(&self, s: Schedule) {
        let _ = self.schedule.send(s);
    }

    /// Closes every client and waits for them.
    pub async fn shutdown(self) -> Vec<Outcome> {
        let _ = self.stop.send(true);
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(o) = t.await {
                out.push(o);
            }
        }
        out
    }
}

/// The documents of a run and the credentials its connections use: with
/// `--as-agencies`, meetings whose sections belong to freshly provisioned
/// agency users; otherwise the `--token-file` (if any).
async fn docs_for(
    common: &Common,
    n: usize,
    label: &str,
    clients_per_meeting: usize,
    writers_per_meeting: usize,
) -> anyhow::Result<(Vec<String>, Tokens)> {
    if common.as_agencies {
        let base = common
            .create_meetings_via
            .as_deref()
            .context("--as-agencies needs --create-meetings-via")?;
        let sections: Vec<String> = (0..writers_per_meeting).map(|k| format!("w{k}")).collect();
        let agencies = setup::Agencies::provision(base, &sections).await?;
        let docs = agencies.meetings(base, n, label).await?;
        eprintln!(
            "{} meetings created via the API, sections owned by agencies",
            docs.len()
        );
        return Ok((docs, agencies.tokens(clients_per_meeting)));
    }
    let docs = setup::meetings(n, common.create_meetings_via.as_deref(), label).await?;
    eprintln!(
        "{} meetings {}",
        docs.len(),
        if common.create_meetings_via.is_some() {
            "created via the API"
        } else {
            "named by random UUIDs"
        }
    );
    Ok((docs, Tokens::load(common.token_file.as_deref())?))
}

/// Creates the documents and credentials (`docs_for`) and starts the fleet.
async fn fleet_for(
    common: &Common,
    meetings: usize,
    label: &str,
    clients_per_meeting: usize,
    writers_per_meeting: usize,
    phases: usize,
) -> anyhow::Result<Fleet> {
    let (docs, tokens) = docs_for(
        common,
        meetings,
        label,
        clients_per_meeting,
        writers_per_meeting,
    )
    .await?;
    Fleet::start(
        common,
        &docs,
        clients_per_meeting,
        writers_per_meeting,
        phases,
        tokens,
    )
}

/// CPU and delivery counters at one instant, to take differences of.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    server_cpu: Option<f64>,
    self_cpu: f64,
    delivered: u64,
    sent: u64,
}

impl Mark {
    fn now(run: &Run, pid: Option<u32>) -> Mark {
        Mark {
            at: Instant::now(),
            server_cpu: procstat::maybe_cpu(pid),
            self_cpu: procstat::self_cpu_seconds(),
            delivered: run.tracker.delivered_total.load(Ordering::Relaxed),
            sent: run.tracker.sent_total.load(Ordering::Relaxed),
        }
    }
}

/// What happened between two marks.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Window {
    seconds: f64,
    sent_per_s: f64,
    delivered_per_s: f64,
    server_cpu_s: Option<f64>,
    server_cpu_s_per_1000_delivered: Option<f64>,
    /// Server CPU seconds per wall second (1.0 = one core busy).
    server_cores_busy: Option<f64>,
    loadgen_cpu_s: f64,
    /// Loadgen CPU seconds per wall second (1.0 = one core busy).
    loadgen_cores_busy: f64,
}

fn window(a: Mark, b: Mark) -> Window {
    let seconds = (b.at - a.at).as_secs_f64().max(1e-9);
    let delivered = b.delivered - a.delivered;
    let server_cpu = match (a.server_cpu, b.server_cpu) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    let loadgen_cpu = b.self_cpu - a.self_cpu;
    Window {
        seconds,
        sent_per_s: (b.sent - a.sent) as f64 / seconds,
        delivered_per_s: delivered as f64 / seconds,
        server_cpu_s: server_cpu,
        server_cpu_s_per_1000_delivered: server_cpu
            .filter(|_| delivered > 0)
            .map(|c| c / (delivered as f64 / 1000.0)),
        server_cores_busy: server_cpu.map(|c| c / seconds),
        loadgen_cpu_s: loadgen_cpu,
        loadgen_cores_busy: loadgen_cpu / seconds,
    }
}

fn phase_json(s: &PhaseSnapshot, protocol: Protocol) -> serde_json::Value {
    let ack = (protocol == Protocol::Hocuspocus).then(|| Percentiles::of(&s.ack));
    json!({
        "sent": s.sent,
        "expected_deliveries": s.expected,
        "delivered": s.delivered,
        "delivery_ratio": s.delivery_ratio(),
        "latency_ms": Percentiles::of(&s.latency),
        "ack_ms": ack,
    })
}

fn warn_if_saturated(w: &Window) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if w.loadgen_cores_busy > 0.7 * cores {
        eprintln!(
            "warning: the load generator itself used {:.2} of {cores} cores; latencies may include its own queueing",
            w.loadgen_cores_busy
        );
    }
}

pub async fn fanout(a: FanoutArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.rate.is_nan() || a.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let writers_per_meeting = a.writers_per_meeting.unwrap_or(a.clients_per_meeting);
    let fleet = fleet_for(
        c,
        a.meetings,
        "fanout",
        a.clients_per_meeting,
        writers_per_meeting,
        1,
    )
    .await?;
    let synced = fleet.wait_synced(secs(c.sync_timeout)).await;
    if synced == 0 {
        let errors = fleet.run.errors();
        fleet.shutdown().await;
        bail!("no client could connect: {errors:?}");
    }
    let run = fleet.run.clone();
    let start = Instant::now();
    let record_from = start + secs(a.warmup);
    if a.timeline {
        run.tracker.start_timeline(record_from);
    }
    fleet.set_schedule(Schedule {
        rate: a.rate,
        phase: 0,
        record_from,
    });
    eprintln!(
        "typing: {} writers at {} updates/s each; warm-up {} s, measuring {} s",
        a.meetings * writers_per_meeting,
        a.rate,
        a.warmup,
        a.duration
    );
    tokio::time::sleep_until(record_from.into()).await;
    let m0 = Mark::now(&run, c.server_pid);
    tokio::time::sleep(secs(a.duration)).await;
    let m1 = Mark::now(&run, c.server_pid);
    fleet.set_schedule(Schedule::idle());
    tokio::time::sleep(secs(a.drain)).await;
    let snap = run.tracker.snapshot(0);
    let timeline = run.tracker.timeline();
    let pending = run.tracker.pending();
    let dropped = run.dropped.load(Ordering::Relaxed);
    let failed = run.failed.load(Ordering::Relaxed);
    let decode_errors = run.tracker.decode_errors.load(Ordering::Relaxed);
    let errors = run.errors();
    fleet.shutdown().await;

    let w = window(m0, m1);
    let lat = Percentiles::of(&snap.latency);
    let ack = Percentiles::of(&snap.ack);
    report::heading(&format!(
        "fanout: {} meetings x {} clients ({} typing) at {} updates/s per writer, {} s measured, {}",
        a.meetings, a.clients_per_meeting, writers_per_meeting, a.rate, a.duration, c.protocol
    ));
    let mut rows = vec![
        (
            "connections".to_owned(),
            format!("{synced} synced, {failed} failed, {dropped} dropped during the run"),
        ),
        (
            "updates sent (measured)".to_owned(),
            format!("{} ({:.1}/s inbound)", snap.sent, w.sent_per_s),
        ),
        (
            "deliveries".to_owned(),
            format!(
                "{} of {} expected ({:.4}), {:.1}/s; {pending} updates missing somewhere",
                snap.delivered,
                snap.expected,
                snap.delivery_ratio(),
                w.delivered_per_s
            ),
        ),
        report::latency_row("fan-out latency", &lat),
    ];
    if c.protocol == Protocol::Hocuspocus {
        rows.push(report::latency_row("sync-status ack", &ack));
    }
    rows.push((
        "server CPU".to_owned(),
        match (w.server_cpu_s, w.server_cpu_s_per_1000_delivered) {
            (Some(s), per) => format!(
                "{s:.2} s ({:.2} cores), {} s per 1000 deliveries",
                s / w.seconds,
                report::opt(per, 4)
            ),
            _ => "- (pass --server-pid)".to_owned(),
        },
    ));
    rows.push((
        "loadgen CPU".to_owned(),
        format!(
            "{:.2} s ({:.2} cores)",
            w.loadgen_cpu_s, w.loadgen_cores_busy
        ),
    ));
    if decode_errors > 0 {
        rows.push(("undecodable updates".to_owned(), decode_errors.to_string()));
    }
    report::kv(&rows);
    if a.timeline {
        print_timeline(&timeline);
    }
    if !errors.is_empty() {
        eprintln!("client errors (first {}): {errors:#?}", errors.len());
    }
    warn_if_saturated(&w);
    report::result(&json!({
        "scenario": "fanout",
        "timeline": timeline,
        "protocol": c.protocol,
        "url": c.url,
        "meetings": a.meetings,
        "clients_per_meeting": a.clients_per_meeting,
        "writers_per_meeting": writers_per_meeting,
        "rate_per_writer": a.rate,
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "connections": {"synced": synced, "failed": failed, "dropped": dropped},
        "measured": phase_json(&snap, c.protocol),
        "window": w,
        "sends_not_delivered_everywhere": pending,
        "decode_errors": decode_errors,
        "errors": errors,
    }));
    Ok(())
}

/// One row per measured second (by scheduled send time).
fn print_timeline(timeline: &[TimelineSecond]) {
    println!();
    let rows: Vec<Vec<String>> = timeline
        .iter()
        .map(|t| {
            vec![
                t.second.to_string(),
                format!("{:.1}", t.unix),
                t.sent.to_string(),
                format!("{}/{}", t.delivered, t.expected),
                report::f2(t.latency_ms.p50_ms),
                report::f2(t.latency_ms.p99_ms),
                report::f2(t.latency_ms.max_ms),
            ]
        })
        .collect();
    report::grid(
        &[
            "second",
            "unix",
            "sent",
            "delivered",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &rows,
    );
}

pub async fn ramp(a: RampArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.rate_start.is_nan()
        || a.rate_start <= 0.0
        || a.rate_factor.is_nan()
        || a.rate_factor <= 1.0
    {
        bail!("--rate-start must be positive and --rate-factor above 1");
    }
    let writers_per_meeting = a.writers_per_meeting.unwrap_or(a.clients_per_meeting);
    let fleet = fleet_for(
        c,
        a.meetings,
        "ramp",
        a.clients_per_meeting,
        writers_per_meeting,
        a.max_steps,
    )
    .await?;
    let synced = fleet.wait_synced(secs(c.sync_timeout)).await;
    if synced == 0 {
        let errors = fleet.run.errors();
        fleet.shutdown().await;
        bail!("no client could connect: {errors:?}");
    }
    let run = fleet.run.clone();
    let writers = a.meetings * writers_per_meeting;
    let mut steps = Vec::new();
    let mut best: Option<serde_json::Value> = None;
    let mut rate = a.rate_start;
    for step in 0..a.max_steps {
        let start = Instant::now();
        let record_from = start + secs(a.warmup);
        fleet.set_schedule(Schedule {
            rate,
            phase: step,
            record_from,
        });
        tokio::time::sleep_until(record_from.into()).await;
        let m0 = Mark::now(&run, c.server_pid);
        tokio::time::sleep(secs(a.step_duration)).await;
        let m1 = Mark::now(&run, c.server_pid);
        fleet.set_schedule(Schedule::idle());
        tokio::time::sleep(secs(a.drain)).await;
        let snap = run.tracker.snapshot(step);
        let w = window(m0, m1);
        let lat = Percentiles::of(&snap.latency);
        let inbound = snap.sent as f64 / a.step_duration;
        let pass = lat.count > 0
            && lat.p99_ms <= a.p99_limit_ms
            && snap.delivery_ratio() >= a.min_delivery;
        eprintln!(
            "step {step}: {rate:.3}/s per writer, {inbound:.0} updates/s in, p99 {:.2} ms, delivered {:.4} -> {}",
            lat.p99_ms,
            snap.delivery_ratio(),
            if pass { "pass" } else { "FAIL" }
        );
        let v = json!({
            "step": step,
            "rate_per_writer": rate,
            "target_inbound_per_s": rate * writers as f64,
            "inbound_per_s": inbound,
            "pass": pass,
            "phase": phase_json(&snap, c.protocol),
            "window": w,
        });
        if pass {
            best = Some(v.clone());
        }
        steps.push((v, lat, snap, w, rate, inbound, pass));
        if !pass {
            break;
        }
        rate *= a.rate_factor;
    }
    let dropped = run.dropped.load(Ordering::Relaxed);
    let errors = run.errors();
    fleet.shutdown().await;

    report::heading(&format!(
        "ramp: {} meetings x {} clients ({} typing), p99 limit {} ms, {}",
        a.meetings, a.clients_per_meeting, writers_per_meeting, a.p99_limit_ms, c.protocol
    ));
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(_, lat, snap, w, rate, inbound, pass)| {
            vec![
                format!("{rate:.3}"),
                format!("{inbound:.0}"),
                format!("{:.0}", w.delivered_per_s),
                format!("{:.4}", snap.delivery_ratio()),
                report::f2(lat.p50_ms),
                report::f2(lat.p99_ms),
                report::f2(lat.p999_ms),
                report::f2(lat.max_ms),
                report::opt(w.server_cpu_s, 2),
                report::opt(w.server_cpu_s_per_1000_delivered, 4),
                report::f2(w.loadgen_cores_busy),
                if *pass { "pass" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    report::grid(
        &[
            "rate/writer",
            "in/s",
            "deliv/s",
            "delivered",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "srv cpu s",
            "cpu s/1k deliv",
            "lg cores",
            "",
        ],
        &rows,
    );
    let summary = match &best {
        Some(b) => format!(
            "highest passing step: {:.0} inbound updates/s ({:.3}/s per writer), {} server CPU-s per 1000 delivered",
            b["inbound_per_s"].as_f64().unwrap_or(0.0),
            b["rate_per_writer"].as_f64().unwrap_or(0.0),
            b["window"]["server_cpu_s_per_1000_delivered"]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.4}"))
        ),
        None => "no step passed".to_owned(),
    };
    println!();
    println!("  {summary}");
    if steps.len() == a.max_steps && steps.last().is_some_and(|s| s.6) {
        println!("  (every step passed: raise --max-steps or --rate-factor to find the limit)");
    }
    if !errors.is_empty() {
        eprintln!("client errors (first {}): {errors:#?}", errors.len());
    }
    if let Some((_, _, _, w, ..)) = steps.last() {
        warn_if_saturated(w);
    }
    report::result(&json!({
        "scenario": "ramp",
        "protocol": c.protocol,
        "url": c.url,
        "meetings": a.meetings,
        "clients_per_meeting": a.clients_per_meeting,
        "writers_per_meeting": writers_per_meeting,
        "p99_limit_ms": a.p99_limit_ms,
        "min_delivery": a.min_delivery,
        "connections": {"synced": synced, "dropped": dropped},
        "highest_passing": best,
        "steps": steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        "errors": errors,
    }));
    Ok(())
}

/// Server CPU time at one instant of the idle scenario.
#[derive(Clone, Copy)]
struct IdleCpu {
    at: Instant,
    cpu_s: f64,
}

impl IdleCpu {
    fn now(pid: u32) -> anyhow::Result<IdleCpu> {
        Ok(IdleCpu {
            at: Instant::now(),
            cpu_s: procstat::cpu_seconds(pid)?,
        })
    }

    fn until(self, later: IdleCpu) -> IdleCpuWindow {
        let seconds = (later.at - self.at).as_secs_f64().max(1e-9);
        let cpu_s = later.cpu_s - self.cpu_s;
        IdleCpuWindow {
            seconds,
            cpu_s,
            percent_of_a_core: 100.0 * cpu_s / seconds,
        }
    }
}

/// Server CPU while the connections sit idle. /proc counts in clock ticks
/// (10 ms), so a window of N seconds resolves 1/N ticks per second.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct IdleCpuWindow {
    seconds: f64,
    cpu_s: f64,
    percent_of_a_core: f64,
}

impl IdleCpuWindow {
    fn describe(&self) -> String {
        format!(
            "{:.2} s over {:.1} s ({:.2}% of a core)",
            self.cpu_s, self.seconds, self.percent_of_a_core
        )
    }
}

pub async fn idle(a: IdleArgs) -> anyhow::Result<()> {
    let c = &a.common;
    let Some(pid) = c.server_pid else {
        bail!("idle needs --server-pid to read the server's memory");
    };
    eprintln!("note: memory per connection is only meaningful against a freshly started server");
    let (docs, tokens) = docs_for(c, a.meetings, "idle", a.clients_per_meeting, 0).await?;
    let rss_before = procstat::rss_kib(pid)?;
    let self_before = procstat::rss_kib(std::process::id()).unwrap_or(0);
    let t0 = Instant::now();
    let fleet = Fleet::start(c, &docs, a.clients_per_meeting, 0, 1, tokens)?;
    let synced = fleet.wait_synced(secs(c.sync_timeout)).await;
    let connect_s = t0.elapsed().as_secs_f64();
    let cpu_synced = IdleCpu::now(pid)?;
    tokio::time::sleep(secs(a.settle)).await;
    let cpu_settled = IdleCpu::now(pid)?;
    let rss_after = procstat::rss_kib(pid)?;
    let self_after = procstat::rss_kib(std::process::id()).unwrap_or(0);
    tokio::time::sleep(secs(a.hold)).await;
    let cpu_end = IdleCpu::now(pid)?;
    let rss_end = procstat::rss_kib(pid)?;
    let settle_cpu = cpu_synced.until(cpu_settled);
    let hold_cpu = (a.hold > 0.0).then(|| cpu_settled.until(cpu_end));
    let failed = fleet.run.failed.load(Ordering::Relaxed);
    let dropped = fleet.run.dropped.load(Ordering::Relaxed);
    let still = synced.saturating_sub(dropped);
    let errors = fleet.run.errors();
    fleet.shutdown().await;

    let per_conn = |after: u64| {
        if synced == 0 {
            0.0
        } else {
            (after as f64 - rss_before as f64) / synced as f64
        }
    };
    report::heading(&format!(
        "idle: {} meetings x {} clients, {}",
        a.meetings, a.clients_per_meeting, c.protocol
    ));
    report::kv(&[
        (
            "connections",
            format!(
                "{synced} synced ({connect_s:.1} s), {failed} failed, {dropped} dropped, {still} open at the end"
            ),
        ),
        (
            "server VmRSS",
            format!(
                "{rss_before} KiB before, {rss_after} KiB after {} s settle, {rss_end} KiB after {} s hold",
                a.settle, a.hold
            ),
        ),
        (
            "per connection",
            format!(
                "{:.1} KiB (settled), {:.1} KiB (end)",
                per_conn(rss_after),
                per_conn(rss_end)
            ),
        ),
        (
            "loadgen VmRSS",
            format!("{self_before} KiB before, {self_after} KiB with the connections open"),
        ),
        ("server CPU, settle", settle_cpu.describe()),
        (
            "server CPU, hold",
            hold_cpu.map_or("- (no --hold)".to_owned(), |w| w.describe()),
        ),
    ]);
    if !errors.is_empty() {
        eprintln!("client errors (first {}): {errors:#?}", errors.len());
    }
    report::result(&json!({
        "scenario": "idle",
        "protocol": c.protocol,
        "url": c.url,
        "meetings": a.meetings,
        "clients_per_meeting": a.clients_per_meeting,
        "connections": {"synced": synced, "failed": failed, "dropped": dropped},
        "connect_s": connect_s,
        "server_rss_kib": {"before": rss_before, "settled": rss_after, "end": rss_end},
        "server_rss_kib_per_connection": per_conn(rss_after),
        "server_rss_kib_per_connection_end": per_conn(rss_end),
        "loadgen_rss_kib": {"before": self_before, "connected": self_after},
        "server_cpu": {"settle": settle_cpu, "hold": hold_cpu},
        "errors": errors,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::TestServer;

    fn common(url: String, protocol: Protocol, token_file: Option<std::path::PathBuf>) -> Common {
        Common {
            url: vec![url],
            protocol,
            create_meetings_via: None,
            as_agencies: false,
            token_file,
            server_pid: None,
            connect_concurrency: 4,
            connect_timeout: 5.0,
            sync_timeout: 5.0,
            awareness_every: 0.0,
        }
    }

    async fn fanout_through(
        protocol: Protocol,
        token_file: Option<std::path::PathBuf>,
    ) -> PhaseSnapshot {
        let server = TestServer::start(protocol).await;
        let url = match protocol {
            Protocol::YWebsocket => format!("ws://{}/sync", server.addr),
            Protocol::Hocuspocus => format!("ws://{}", server.addr),
        };
        let c = common(url, protocol, token_file);
        let docs = vec!["meeting-1".to_owned()];
        let tokens = Tokens::load(c.token_file.as_deref()).unwrap();
        let fleet = Fleet::start(&c, &docs, 3, 2, 1, tokens).unwrap();
        assert_eq!(fleet.wait_synced(Duration::from_secs(5)).await, 3);
        fleet.set_schedule(Schedule {
            rate: 40.0,
            phase: 0,
            record_from: Instant::now(),
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        fleet.set_schedule(Schedule::idle());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let snap = fleet.run.tracker.snapshot(0);
        assert_eq!(fleet.run.tracker.decode_errors.load(Ordering::Relaxed), 0);
        let outcomes = fleet.shutdown().await;
        assert!(outcomes.iter().all(|o| o.synced && o.error.is_none()));
        if protocol == Protocol::Hocuspocus {
            let mut tokens = server.tokens();
            tokens.sort();
            let expected: Vec<String> = if c.token_file.is_some() {
                vec!["a".into(), "b".into(), "c".into()]
            } else {
                vec![String::new(); 3]
            };
            assert_eq!(tokens, expected);
        }
        snap
    }

    #[tokio::test]
    async fn y_websocket_fanout_end_to_end() {
        let s = fanout_through(Protocol::YWebsocket, None).await;
        assert!(s.sent >= 10, "sent {}", s.sent);
        // Two writers, three clients: every update reaches the two others.
        assert_eq!(s.expected, 2 * s.sent);
        assert_eq!(s.delivered, s.expected);
        assert_eq!(s.latency.len(), s.delivered);
        assert_eq!(s.ack.len(), 0);
    }

    #[tokio::test]
    async fn hocuspocus_fanout_end_to_end_with_tokens_and_acks() {
        let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, "a polis\nb\nc\n").unwrap();
        let s = fanout_through(Protocol::Hocuspocus, Some(tokens)).await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(s.sent >= 10, "sent {}", s.sent);
        assert_eq!(s.delivered, s.expected);
        assert_eq!(s.ack.len(), s.sent);
    }

    #[test]
    fn client_ids_are_distinct_and_js_safe() {
        let ids = client_ids(10_000);
        let set: HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|&i| i > 0 && i < 1 << 31));
    }
}
