//! The browser app end to end: the release-built server binary (as the
//! README runs it, with `--demo`) on a real database, and Debian's chromium
//! driven by playwright-core (`tests/e2e/`, pinned in its lock file; never a
//! downloaded browser). Each scenario is a Node script in
//! `tests/e2e/scenarios.mjs`; it prints its figures (typing-to-visible
//! latency, axe results) as `figure:` lines, shown with `--nocapture`.
//!
//! Chromium must be installed (`.ci/run` installs it): a missing browser
//! fails these tests rather than skipping them.
//!
//! Screenshots go to a temporary folder, deleted after the scenario (or to
//! `PROTOKOLL_SCREENSHOT_DIR`, kept, to look at them); only
//! `PROTOKOLL_UPDATE_SCREENSHOTS=1` writes the ones in `docs/screenshots/`,
//! so that a test run leaves the checkout as it found it.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::SystemTime};

use tokio::sync::{Mutex, OnceCell};

use crate::{helpers::*, on_both_backends};

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("PROTOKOLL_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "chromium is needed for the browser tests: apt-get install chromium \
         (or set PROTOKOLL_CHROMIUM); .ci/run installs it"
    );
    path
}

/// Installs the pinned npm packages once per test run, if not yet there.
async fn npm_packages() -> &'static PathBuf {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_init(|| async {
        let dir = e2e_dir();
        if !dir.join("node_modules/playwright-core").exists() {
            let status = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .current_dir(&dir)
                .status()
                .await
                .expect("npm must be installed for the browser tests");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
        dir
    })
    .await
}

/// One browser scenario at a time: each starts chromium with several
/// pages, and the machine has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn docs_screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

/// Whether this run refreshes the screenshots in `docs/`.
fn updating_screenshots() -> bool {
    std::env::var_os("PROTOKOLL_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1")
}

/// Where a scenario writes its screenshots, and the temporary folder to
/// delete afterwards if it is one.
fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if updating_screenshots() {
        return (docs_screenshots(), None);
    }
    if let Some(dir) = std::env::var_os("PROTOKOLL_SCREENSHOT_DIR") {
        return (PathBuf::from(dir), None);
    }
    let temp = tempfile::Builder::new()
        .prefix("protokoll-screenshots-")
        .tempdir()
        .expect("a temporary folder for the screenshots");
    (temp.path().to_owned(), Some(temp))
}

/// The files in `docs/screenshots/` and when each was last written.
fn committed_screenshots() -> BTreeMap<PathBuf, Option<SystemTime>> {
    std::fs::read_dir(docs_screenshots())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| (e.path(), e.metadata().and_then(|m| m.modified()).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `tests/e2e/scenarios.mjs NAME` against a fresh demo server.
async fn scenario(backend: Backend, name: &str) {
    run_scenario(backend, name).await;
}

/// `scenario`, returning what it printed, its database (the server has
/// stopped) and the demo meeting's id.
async fn run_scenario(
    backend: Backend,
    name: &str,
) -> (String, TestDb, protokoll::meeting::MeetingId) {
    let dir = npm_packages().await;
    let browser = chromium();
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = TestDb::new(backend).await;
    // Pings every 2 s: a connection cut without a goodbye (the offline
    // scenario) is noticed within seconds rather than a minute.
    let (server, meeting) = ProcessServer::start_demo(&db, &["--ping-interval-secs", "2"]).await;
    let (screenshots, _temporary) = screenshot_dir();
    let committed = committed_screenshots();
    let child = tokio::process::Command::new("node")
        .arg("scenarios.mjs")
        .arg(name)
        .env("BASE_URL", format!("http://{}", server.addr))
        .env("MEETING_ID", meeting.to_string())
        .env("CHROMIUM", browser)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("SCREENSHOT_DIR", screenshots)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed for the browser tests");
    let out = tokio::time::timeout(DEADLINE * 5, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("scenario {name} finishes in time"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "browser scenario {name} failed on {backend:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("scenario {name}: passed")),
        "scenario {name} reported no pass:\n{stdout}"
    );
    if !updating_screenshots() {
        assert_eq!(
            committed_screenshots(),
            committed,
            "scenario {name} left docs/screenshots/ as it was \
             (PROTOKOLL_UPDATE_SCREENSHOTS=1 refreshes them)"
        );
    }
    server.terminate().await;
    (stdout, db, meeting)
}

async fn two_agencies_type_at_once_and_a_member_watches(backend: Backend) {
    scenario(backend, "live-typing").await;
}

async fn the_secretary_locks_while_two_agencies_type_and_the_chair_and_justerare_verify(
    backend: Backend,
) {
    scenario(backend, "lock-and-verify").await;
}

on_both_backends!(
    two_agencies_type_at_once_and_a_member_watches,
    the_secretary_locks_while_two_agencies_type_and_the_chair_and_justerare_verify,
);

macro_rules! sqlite_scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                init_logs();
                scenario(Backend::Sqlite, $name).await;
            }
        )*
    };
}

sqlite_scenarios! {
    a_member_who_only_reads_sends_no_update => "read-only-is-quiet",
    an_edit_forced_into_another_agencys_section_is_refused_and_the_page_recovers => "forbidden-edit",
    pages_follow_the_secretary_reordering_and_reassigning_live => "secretary-reassigns",
    typing_offline_reaches_the_others_on_reconnect => "offline",
    the_connection_indicator_follows_the_socket_through_a_network_blip => "network-blip",
    every_page_fits_a_phone_and_the_chair_signs_off_on_one => "phone",
    a_newcomer_invited_to_a_meeting_from_an_earlier_one_writes_their_section => "newcomer",
    keyboard_alone_signs_in_reaches_a_section_and_moves_an_agenda_item => "keyboard-only",
    axe_finds_no_wcag_violations_and_screenshots_are_taken => "accessibility",
    reopening_before_anyone_signed_makes_every_page_a_draft_again_live => "reopen-before-signoff",
    a_link_written_with_target_and_rel_opener_opens_without_the_opener => "link-attributes",
    switching_language_relabels_the_page_and_keeps_its_connection => "language-switch",
}

/// Issue 23, defect 1 in the browser: the police type offline, then come
/// back online while typing on (the link stalls a moment after the
/// handshake, so keystrokes go out before the page's sync step 2 has
/// delivered the offline text). Every character reaches the member's page
/// (checked in the scenario) and is in the stored document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_offline_then_on_through_the_reconnect_reaches_everyone_and_is_stored() {
    init_logs();
    let (stdout, db, meeting) =
        run_scenario(Backend::Sqlite, "offline-then-typing-through-the-reconnect").await;
    let typed: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("typed: "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the scenario prints what it typed");
    let typed = typed["polis"].as_str().unwrap();
    let database = db.database().await;
    let stored = stored_doc(&database.docs, meeting).await;
    let polis = fragment_text(&stored, "section:polis");
    assert!(polis.contains(typed), "{typed:?} is stored: {polis}");
    database.close().await;
}
