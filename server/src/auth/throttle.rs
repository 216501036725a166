//! Throttling of failed sign-ins: after `MAX_FAILURES` failures within
//! `WINDOW` for one username, or `MAX_FAILURES_PER_IP` from one address,
//! further attempts are refused (even with the right password) until the
//! window has passed. In memory, per server node: a restart forgets, which
//! only ever errs on the side of letting a real user back in.
//!
//! Hand-written rather than `governor`: that crate limits the rate of all
//! attempts, while this must count only failures and refuse before checking
//! the password.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

pub const MAX_FAILURES: usize = 5;
pub const MAX_FAILURES_PER_IP: usize = 50;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Ip(IpAddr),
}

#[derive(Default)]
pub struct LoginThrottle {
    // std Mutex: held for a map operation, never across an await.
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` if this sign-in may not be attempted now.
    pub fn check(&self, username: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().expect("throttle lock");
        let mut wait = None;
        for (key, max) in keys(username, ip) {
            if let Some(times) = map.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= max {
                    let retry = WINDOW - now.duration_since(times[0]);
                    wait = Some(wait.map_or(retry, |w: Duration| w.max(retry)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>, now: Instant) {
        let mut map = self.failures.lock().expect("throttle lock");
        for (key, _) in keys(username, ip) {
            map.entry(key).or_default().push_back(now);
        }
        // Forget keys with no failure left in the window, so the map stays
        // bounded by recent activity.
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
    }

    pub fn record_success(&self, username: &str) {
        let mut map = self.failures.lock().expect("throttle lock");
        map.remove(&Key::User(username.to_owned()));
    }
}

fn keys(username: &str, ip: Option<IpAddr>) -> impl Iterator<Item = (Key, usize)> {
    std::iter::once((Key::User(username.to_lowercase()), MAX_FAILURES))
        .chain(ip.map(|ip| (Key::Ip(ip), MAX_FAILURES_PER_IP)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_the_username_until_the_window_passes() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check("anna", None, t0).is_ok());
            throttle.record_failure("anna", None, t0);
        }
        assert!(throttle.check("anna", None, t0).is_err());
        assert!(
            throttle.check("ANNA", None, t0).is_err(),
            "case-insensitive"
        );
        assert!(
            throttle.check("bertil", None, t0).is_ok(),
            "others unaffected"
        );
        assert!(throttle.check("anna", None, t0 + WINDOW).is_ok());
    }

    #[test]
    fn many_failures_from_one_address_block_it() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_IP {
            throttle.record_failure(&format!("user{i}"), Some(ip), t0);
        }
        assert!(throttle.check("someone-new", Some(ip), t0).is_err());
        assert!(throttle.check("someone-new", None, t0).is_ok());
    }
}
