//! Limits of the anonymous verification routes (`/api/verify`, `/verify`):
//! how often one client address may ask, and how many files it, and
//! everyone together, may be uploading at once.
//!
//! Anyone may verify a protocol without signing in, so these routes are
//! what a stranger can make the server do: read a file of up to 32 MiB and
//! hash it, or look a hash up in the database. The file is hashed as it
//! arrives and never held whole (see `protocol::verify::presented`); the body
//! must have arrived within the request body deadline (`body_deadline`);
//! and this gate bounds the rest. Addresses count by
//! [`client_addr::limit_key`] (an IPv6 client by its /64), behind trusted
//! proxies by the client's address. In memory, per server node.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{client_addr, sync::limits::TokenBucket};

/// Verification requests one client address may make per second on
/// average (uploads and hash look-ups alike): 30 a minute.
pub const RATE_PER_SEC: f64 = 0.5;
/// ... and at once, before the rate applies (someone checking a folder of
/// protocols).
pub const BURST: f64 = 20.0;
/// Files one client address may be uploading at once.
pub const UPLOADS_PER_ADDRESS: usize = 2;
/// Files everyone together may be uploading at once.
pub const UPLOADS_TOTAL: usize = 16;
/// The `Retry-After` when every upload slot is taken.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// An address's bucket is full again this long after its last request;
/// then its entry can go.
const IDLE: Duration = Duration::from_secs((BURST / RATE_PER_SEC) as u64 + 1);

struct Entry {
    bucket: TokenBucket,
    uploading: usize,
    last: Instant,
}

/// Why a verification request is not taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address asked too often: try again after this many seconds.
    Rate(u64),
    /// This address is uploading [`UPLOADS_PER_ADDRESS`] files already.
    Uploading,
    /// [`UPLOADS_TOTAL`] files are being uploaded.
    Busy,
}

pub struct VerifyGate {
    // std Mutex: map operations only, never held across an await.
    addresses: Mutex<HashMap<IpAddr, Entry>>,
    uploads: Arc<Semaphore>,
}

impl Default for VerifyGate {
    fn default() -> Self {
        Self {
            addresses: Mutex::default(),
            uploads: Arc::new(Semaphore::new(UPLOADS_TOTAL)),
        }
    }
}

/// An upload in progress; the counts fall when it is dropped.
#[must_use]
pub struct Upload {
    gate: Arc<VerifyGate>,
    key: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let mut addresses = self.gate.addresses.lock().expect("verify gate lock");
        if let Some(entry) = addresses.get_mut(&self.key) {
            entry.uploading = entry.uploading.saturating_sub(1);
        }
    }
}

impl VerifyGate {
    /// Counts a request from `ip` against its rate.
    pub fn ask(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let mut addresses = self.addresses.lock().expect("verify gate lock");
        let key = client_addr::limit_key(ip);
        Self::take(&mut addresses, key, now)
    }

    /// Counts a request from `ip` against its rate and takes an upload
    /// slot for it.
    pub fn upload(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Upload, Refusal> {
        let key = client_addr::limit_key(ip);
        let mut addresses = self.addresses.lock().expect("verify gate lock");
        Self::take(&mut addresses, key, now)?;
        let entry = addresses.get_mut(&key).expect("taken above");
        if entry.uploading >= UPLOADS_PER_ADDRESS {
            return Err(Refusal::Uploading);
        }
        let slot = self
            .uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        entry.uploading += 1;
        Ok(Upload {
            gate: self.clone(),
            key,
            _slot: slot,
        })
    }

    fn take(
        addresses: &mut HashMap<IpAddr, Entry>,
        key: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        if addresses.len() >= 4_096 && !addresses.contains_key(&key) {
            // Forget addresses whose bucket has refilled and that upload
            // nothing, so the map stays as large as recent traffic.
            addresses.retain(|_, e| e.uploading > 0 || now.duration_since(e.last) < IDLE);
        }
        let entry = addresses.entry(key).or_insert_with(|| Entry {
            bucket: TokenBucket::new(RATE_PER_SEC, BURST, now),
            uploading: 0,
            last: now,
        });
        entry.last = now;
        // The bucket goes into debt with every refused request too: a
        // client that keeps asking stays refused, one that waits the
        // Retry-After it was given gets through.
        let wait = entry.bucket.take(1.0, now);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Refusal::Rate(wait.as_secs().max(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_uploads_two_files_at_once_and_everyone_sixteen() {
        let gate = Arc::new(VerifyGate::default());
        let now = Instant::now();
        let a = gate.upload(ip("192.0.2.1"), now).unwrap();
        let _b = gate.upload(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            gate.upload(ip("192.0.2.1"), now).err(),
            Some(Refusal::Uploading)
        );
        drop(a);
        let _c = gate.upload(ip("192.0.2.1"), now).unwrap();
        let mut others = Vec::new();
        for n in 0..UPLOADS_TOTAL - 2 {
            others.push(gate.upload(ip(&format!("198.51.100.{n}")), now).unwrap());
        }
        assert_eq!(
            gate.upload(ip("203.0.113.1"), now).err(),
            Some(Refusal::Busy)
        );
    }

    #[test]
    fn an_address_that_asks_too_often_waits() {
        let gate = VerifyGate::default();
        let now = Instant::now();
        for _ in 0..BURST as usize {
            gate.ask(ip("2001:db8::1"), now).unwrap();
        }
        // The same /64.
        assert!(matches!(
            gate.ask(ip("2001:db8::2"), now),
            Err(Refusal::Rate(_))
        ));
        assert!(
            gate.ask(ip("192.0.2.9"), now).is_ok(),
            "others are not held"
        );
        let later = now + Duration::from_secs(10);
        assert!(gate.ask(ip("2001:db8::1"), later).is_ok());
    }
}
