//! How many WebSockets may be open: per user, per client address, and in
//! all, so that one user (or one stolen token) cannot take every file
//! descriptor and cut everyone else off.
//!
//! Every open WebSocket holds a [`SocketSlot`]; the counts fall when the
//! slot is dropped. Counts are per server node.
//!
//! The total is what the process's open-file limit allows minus a reserve:
//! the reserve keeps descriptors for the database, `/healthz`, sign-in and
//! the API when sockets fill everything else. Upgrades beyond the total are
//! refused before they happen (503 with `Retry-After`); a socket over a
//! per-user or per-address cap is accepted and closed at once with 4429 and
//! a reason, which y-websocket does not retry.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tracing::{info, warn};

use crate::{client_addr, people::UserId};

/// The soft open-file limit is raised to at most this (Linux's default
/// `fs.nr_open`), when the hard limit is "unlimited".
const NOFILE_CEILING: u64 = 1 << 20;

/// Descriptors kept back from WebSockets: an eighth of the limit, at least
/// 64 (the database pool, the listener, logs, a few HTTP requests) and at
/// most 1,024.
fn reserve_for(limit: u64) -> u64 {
    (limit / 8).clamp(64, 1024)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The open-file limit in force.
    pub limit: u64,
    /// How many of them WebSockets may use.
    pub sockets: usize,
}

/// Raises the soft open-file limit to the hard limit (systemd's default
/// soft limit is 1,024 while the hard one is far higher) and says how many
/// WebSockets fit beside the reserve.
pub fn descriptor_budget() -> DescriptorBudget {
    let limit = raise_nofile_limit();
    let reserve = reserve_for(limit);
    let sockets = limit.saturating_sub(reserve) as usize;
    if limit < 4096 {
        warn!(
            limit,
            sockets, "the open-file limit is low; raise it (LimitNOFILE=65536 in the systemd unit)"
        );
    } else {
        info!(limit, sockets, "open-file limit");
    }
    DescriptorBudget { limit, sockets }
}

fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let want = limit.rlim_max.min(NOFILE_CEILING);
        if limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = want;
            }
        }
    }
    limit.rlim_cur
}

/// Why a WebSocket may not stay open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "too many connections for this user (at most {0} at once); close other tabs or windows"
    )]
    User(usize),
    #[error("too many connections from this network address (at most {0} at once)")]
    Address(usize),
    #[error("the server has reached its connection limit; try again later")]
    Full,
}

#[derive(Default)]
struct Counts {
    open: usize,
    users: HashMap<UserId, usize>,
    addresses: HashMap<IpAddr, usize>,
}

pub struct SocketLimits {
    per_user: usize,
    per_address: usize,
    total: usize,
    // std Mutex: held for a few map operations, never across an await.
    counts: Mutex<Counts>,
}

/// One open WebSocket's place in the counts. A socket being refused (over
/// its user's or address's cap, closed with 4429) counts in the total only:
/// it still holds a descriptor while it closes.
pub struct SocketSlot {
    limits: Arc<SocketLimits>,
    owner: Option<(UserId, IpAddr)>,
}

impl SocketLimits {
    pub fn new(per_user: usize, per_address: usize, total: usize) -> Self {
        Self {
            per_user,
            per_address,
            total,
            counts: Mutex::default(),
        }
    }

    /// A slot for a socket of `user` from `address`, unless a limit is
    /// reached.
    pub fn acquire(self: &Arc<Self>, user: UserId, address: IpAddr) -> Result<SocketSlot, Refusal> {
        let address = client_addr::limit_key(address);
        let mut counts = self.counts.lock().expect("socket counts");
        if counts.open >= self.total {
            return Err(Refusal::Full);
        }
        if counts.users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return Err(Refusal::User(self.per_user));
        }
        if counts.addresses.get(&address).copied().unwrap_or(0) >= self.per_address {
            return Err(Refusal::Address(self.per_address));
        }
        counts.open += 1;
        *counts.users.entry(user).or_default() += 1;
        *counts.addresses.entry(address).or_default() += 1;
        Ok(SocketSlot {
            limits: self.clone(),
            owner: Some((user, address)),
        })
    }

    /// A slot in the total only, for a socket that is accepted just to be
    /// closed with a reason; `Err(Full)` if even that would eat into the
    /// reserve.
    pub fn acquire_for_refusal(self: &Arc<Self>) -> Result<SocketSlot, Refusal> {
        let mut counts = self.counts.lock().expect("socket counts");
        if counts.open >= self.total {
            return Err(Refusal::Full);
        }
        counts.open += 1;
        Ok(SocketSlot {
            limits: self.clone(),
            owner: None,
        })
    }

    /// Open sockets in all.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("socket counts").open
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().expect("socket counts");
        counts.open -= 1;
        if let Some((user, address)) = &self.owner {
            release(&mut counts.users, user);
            release(&mut counts.addresses, address);
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
    fn caps_per_user_address_and_total() {
        let limits = Arc::new(SocketLimits::new(2, 3, 5));
        let (anna, berit, cecilia) = (UserId::new(), UserId::new(), UserId::new());
        let a1 = limits.acquire(anna, ip("192.0.2.1")).unwrap();
        let _a2 = limits.acquire(anna, ip("192.0.2.2")).unwrap();
        assert_eq!(
            limits.acquire(anna, ip("192.0.2.3")).err(),
            Some(Refusal::User(2))
        );
        let _b1 = limits.acquire(berit, ip("192.0.2.1")).unwrap();
        let _b2 = limits.acquire(berit, ip("192.0.2.1")).unwrap();
        assert_eq!(
            limits.acquire(cecilia, ip("192.0.2.1")).err(),
            Some(Refusal::Address(3))
        );
        let _c1 = limits.acquire(cecilia, ip("192.0.2.9")).unwrap();
        assert_eq!(limits.open(), 5);
        assert_eq!(
            limits.acquire(cecilia, ip("192.0.2.8")).err(),
            Some(Refusal::Full)
        );
        assert_eq!(limits.acquire_for_refusal().err(), Some(Refusal::Full));
        drop(a1);
        let refusing = limits.acquire_for_refusal().unwrap();
        assert_eq!(
            limits.open(),
            5,
            "a socket being refused counts in the total"
        );
        assert_eq!(
            limits.acquire(cecilia, ip("192.0.2.8")).err(),
            Some(Refusal::Full)
        );
        drop(refusing);
        assert!(
            limits.acquire(cecilia, ip("192.0.2.8")).is_ok(),
            "a slot freed"
        );
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address() {
        let limits = Arc::new(SocketLimits::new(10, 1, 10));
        let _held = limits
            .acquire(UserId::new(), ip("2001:db8:1:2::1"))
            .unwrap();
        assert_eq!(
            limits.acquire(UserId::new(), ip("2001:db8:1:2::2")).err(),
            Some(Refusal::Address(1))
        );
        assert!(limits.acquire(UserId::new(), ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn the_reserve_grows_with_the_limit() {
        assert_eq!(reserve_for(256), 64);
        assert_eq!(reserve_for(1024), 128);
        assert_eq!(reserve_for(65536), 1024);
    }
}
