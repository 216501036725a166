//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes, 1 lane, the OWASP minimum). Hashing is deliberately slow and
//! memory-hungry, which makes it the cheapest way to exhaust a server: one
//! unauthenticated `POST /api/login` costs 19 MiB and ~50 ms of a core.
//!
//! So every hash (sign-in, account creation, password reset, accepting an
//! invitation, the CLI) goes through one process-wide [`Hasher`]:
//! - at most one hash per core runs at a time (a semaphore), on the blocking
//!   pool;
//! - a bounded number of callers may wait for a turn (`QUEUE_PER_CORE` per
//!   core, at most `MAX_WAIT`); beyond that the caller is told at once that
//!   the server is busy ([`Busy`], answered 503 with `Retry-After`);
//! - the 19 MiB working memory comes from a small pool of buffers, one per
//!   running hash, allocated once and reused. Allocating it per hash let
//!   glibc keep every freed buffer in per-thread arenas: 300 concurrent
//!   sign-ins left the server at 5.8 GB. With the pool, the memory used for
//!   hashing is `cores x 19 MiB`, whatever the load.
//!
//! The permit, the queue slot and the buffer travel into the blocking task,
//! so a caller that gives up (a client that disconnects) cannot make more
//! hashes run at once than there are permits.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::people::NewPassword;

/// Callers that may wait for a hashing turn, per core. A sign-in takes about
/// 50 ms of a core, so a full queue clears in well under a second.
const QUEUE_PER_CORE: usize = 16;

/// Longest a caller waits for a turn before it is told the server is busy.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// What a busy answer tells the client to wait, in seconds.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Stored hashes whose memory cost is above this are refused rather than
/// computed: they did not come from this server.
const MAX_BLOCKS: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many passwords are being checked at once; try again in a moment")]
pub struct Busy;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error("password hashing failed")]
    Failed,
}

/// Bounded, memory-pooled Argon2 hashing; see the module documentation.
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Callers waiting or running.
    admitted: Arc<AtomicUsize>,
    max_admitted: usize,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// Gives the queue slot back when the hash is done (or abandoned).
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(AtomicUsize::new(0)),
            max_admitted: concurrency * (1 + QUEUE_PER_CORE),
            memory: Arc::new(Mutex::new(Vec::with_capacity(concurrency))),
        }
    }

    /// The process-wide hasher, one permit per core.
    pub fn global() -> &'static Hasher {
        static GLOBAL: OnceLock<Hasher> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            Hasher::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
        })
    }

    /// Runs `work` with an Argon2 memory buffer on the blocking pool, once a
    /// turn is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let admission = Admission(self.admitted.clone());
        let permit: OwnedSemaphorePermit =
            match tokio::time::timeout(MAX_WAIT, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(Busy),
            };
        let pool = self.memory.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _held = (permit, admission);
            // std Mutex: held to pop or push one buffer, never across work.
            let mut memory = pool
                .lock()
                .expect("hash memory pool")
                .pop()
                .unwrap_or_default();
            let out = work(&mut memory);
            pool.lock().expect("hash memory pool").push(memory);
            out
        });
        task.await.map_err(|_| Busy)
    }
}

/// Hashes a new password (Argon2id, a fresh salt) as a PHC string.
pub async fn hash(password: NewPassword) -> Result<String, HashError> {
    Hasher::global()
        .run(move |memory| hash_with(password.expose().as_bytes(), memory))
        .await?
        .ok_or(HashError::Failed)
}

/// Checks `password` against `stored`. With no stored hash (unknown user, or
/// one who has not set a password), a dummy hash is checked anyway, so that
/// the answer takes as long as for a real user.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, Busy> {
    Hasher::global()
        .run(move |memory| {
            let dummy = dummy_hash();
            let (hash, real) = match stored.as_deref().map(PasswordHash::new) {
                Some(Ok(parsed)) => (parsed, true),
                _ => (PasswordHash::new(dummy).expect("valid dummy hash"), false),
            };
            verify_with(password.as_bytes(), &hash, memory) && real
        })
        .await
}

fn hash_with(password: &[u8], memory: &mut Vec<Block>) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).ok()?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password,
        salt_bytes,
        &mut out,
        memory,
    )?;
    Some(
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).ok()?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).ok()?),
        }
        .to_string(),
    )
}

/// What `argon2`'s `verify_password` does, computing in `memory`.
fn verify_with(password: &[u8], stored: &PasswordHash<'_>, memory: &mut Vec<Block>) -> bool {
    let mut check = || -> Option<bool> {
        let algorithm = Algorithm::try_from(stored.algorithm).ok()?;
        let version = match stored.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(stored).ok()?;
        let expected = stored.hash?;
        let mut salt_bytes = [0u8; 64];
        let salt = stored.salt?.decode_b64(&mut salt_bytes).ok()?;
        let mut out = vec![0u8; expected.len()];
        compute(algorithm, version, params, password, salt, &mut out, memory)?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Option<()> {
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return None;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .ok()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_with(b"no such user", &mut Vec::new()).expect("hashing a constant"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hashed = hash(NewPassword::parse("korrekt hästbatteri").unwrap())
            .await
            .unwrap();
        assert!(
            hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hashed}"
        );
        assert!(
            verify("korrekt hästbatteri".into(), Some(hashed.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("fel lösenord här".into(), Some(hashed.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("no such user".into(), None).await.unwrap());
        // The pooled computation is Argon2id as the crate computes it.
        let parsed = PasswordHash::new(&hashed).unwrap();
        assert!(
            Argon2::default()
                .verify_password("korrekt hästbatteri".as_bytes(), &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn hashes_made_by_the_crate_still_verify() {
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let made = Argon2::default()
            .hash_password(b"ett gammalt l\xc3\xb6senord", &salt)
            .unwrap()
            .to_string();
        assert!(
            verify("ett gammalt lösenord".into(), Some(made.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("ett annat lösenord".into(), Some(made))
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = Arc::new(Hasher::new(1));
        let gate = Arc::new(std::sync::Barrier::new(2));
        let running = {
            let (hasher, gate) = (hasher.clone(), gate.clone());
            tokio::spawn(async move { hasher.run(move |_| gate.wait()).await })
        };
        // Fill the queue behind the running job.
        let waiting: Vec<_> = (1..hasher.max_admitted)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.run(|_| ()).await })
            })
            .collect();
        while hasher.admitted.load(Ordering::Acquire) < hasher.max_admitted {
            tokio::task::yield_now().await;
        }
        assert_eq!(hasher.run(|_| ()).await, Err(Busy));
        gate.wait();
        assert!(running.await.unwrap().is_ok());
        for w in waiting {
            assert!(w.await.unwrap().is_ok());
        }
        assert_eq!(hasher.admitted.load(Ordering::Acquire), 0);
        assert!(
            hasher.memory.lock().unwrap().len() <= 1,
            "one buffer per permit"
        );
    }
}
