//! Throttling of failed sign-ins: after `MAX_FAILURES` failures within
//! `WINDOW` for one username, or `MAX_FAILURES_PER_IP` from one client
//! address, further attempts are refused (even with the right password)
//! until the window has passed. In memory, per server node: a restart
//! forgets, which only ever errs on the side of letting a real user back in.
//!
//! An attempt takes its slot *before* the password is checked and counts as
//! a failure until it has succeeded: otherwise any number of concurrent
//! attempts all pass the check while none has failed yet. The username is
//! the parsed, normalised [`Username`] (so `"skola "` and `"ｓｋｏｌａ"` are
//! `skola`); input that is no valid username can match no account and
//! counts against the address only. Addresses are counted by
//! [`client_addr::limit_key`] (an IPv6 client by its /64).
//!
//! Hand-written rather than `governor`: that crate limits the rate of all
//! attempts, while this must count only failures and refuse before checking
//! the password.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{client_addr, people::Username};

pub const MAX_FAILURES: usize = 5;
pub const MAX_FAILURES_PER_IP: usize = 50;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(Username),
    Addr(IpAddr),
}

impl Key {
    fn max(&self) -> usize {
        match self {
            Key::User(_) => MAX_FAILURES,
            Key::Addr(_) => MAX_FAILURES_PER_IP,
        }
    }
}

#[derive(Default)]
struct State {
    /// Per key, the attempts in the window: when, and which attempt.
    attempts: HashMap<Key, VecDeque<(Instant, u64)>>,
    /// Attempts whose password is still being checked.
    in_flight: HashSet<u64>,
    next_id: u64,
    /// Map size after the last full sweep of expired keys.
    swept_at: usize,
}

#[derive(Default)]
pub struct LoginThrottle {
    // std Mutex: held for map operations, never across an await.
    state: Mutex<State>,
}

/// A sign-in attempt holding its slots. Dropped without
/// [`succeeded`](Attempt::succeeded) or [`cancelled`](Attempt::cancelled),
/// it stays counted as a failure.
#[must_use]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    id: u64,
    keys: Vec<Key>,
    settled: bool,
}

fn keys(user: Option<&Username>, addr: Option<IpAddr>) -> Vec<Key> {
    user.map(|u| Key::User(u.clone()))
        .into_iter()
        .chain(addr.map(|a| Key::Addr(client_addr::limit_key(a))))
        .collect()
}

fn expire(times: &mut VecDeque<(Instant, u64)>, in_flight: &HashSet<u64>, now: Instant) {
    // In-flight attempts never expire: they are at most a few seconds old.
    while times
        .front()
        .is_some_and(|(t, id)| now.duration_since(*t) >= WINDOW && !in_flight.contains(id))
    {
        times.pop_front();
    }
}

impl LoginThrottle {
    /// Takes a slot for a sign-in by `user` (when the input parsed as a
    /// username) from `addr`, or `Err(retry_after)` if the attempt may not
    /// be made now.
    pub fn begin(
        &self,
        user: Option<&Username>,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let keys = keys(user, addr);
        let mut state = self.state.lock().expect("throttle lock");
        let State {
            attempts,
            in_flight,
            ..
        } = &mut *state;
        let mut wait: Option<Duration> = None;
        for key in &keys {
            if let Some(times) = attempts.get_mut(key) {
                expire(times, in_flight, now);
                if times.len() >= key.max() {
                    let oldest = times[times.len() - key.max()].0;
                    let retry = WINDOW.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.map_or(retry, |w| w.max(retry)));
                }
            }
        }
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.in_flight.insert(id);
        for key in &keys {
            state
                .attempts
                .entry(key.clone())
                .or_default()
                .push_back((now, id));
        }
        // Forget keys with nothing left in the window now and then, so the
        // map stays bounded by recent activity at an amortised O(1) cost.
        if state.attempts.len() > 2 * state.swept_at.max(512) {
            let State {
                attempts,
                in_flight,
                ..
            } = &mut *state;
            attempts.retain(|_, times| {
                expire(times, in_flight, now);
                !times.is_empty()
            });
            state.swept_at = state.attempts.len();
        }
        drop(state);
        Ok(Attempt {
            throttle: self,
            id,
            keys,
            settled: false,
        })
    }
}

impl Attempt<'_> {
    /// The password was right: the user's earlier failures are forgotten
    /// (not other attempts still in flight), and this attempt does not count
    /// against the address.
    pub fn succeeded(mut self) {
        self.settle(|key, times, in_flight| match key {
            Key::User(_) => times.retain(|(_, id)| in_flight.contains(id)),
            Key::Addr(_) => {}
        });
    }

    /// No password was checked (the server was busy, or failed): the
    /// attempt does not count.
    pub fn cancelled(mut self) {
        self.settle(|_, _, _| {});
    }

    /// Removes this attempt's own entries, then lets `also` tidy each key.
    fn settle(&mut self, also: impl Fn(&Key, &mut VecDeque<(Instant, u64)>, &HashSet<u64>)) {
        let mut state = self.throttle.state.lock().expect("throttle lock");
        state.in_flight.remove(&self.id);
        let State {
            attempts,
            in_flight,
            ..
        } = &mut *state;
        for key in &self.keys {
            if let Some(times) = attempts.get_mut(key) {
                times.retain(|(_, id)| *id != self.id);
                also(key, times, in_flight);
                if times.is_empty() {
                    attempts.remove(key);
                }
            }
        }
        drop(state);
        self.settled = true;
    }
}

impl Drop for Attempt<'_> {
    /// A failure: the entries stay, and stop being in flight.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(mut state) = self.throttle.state.lock() {
            state.in_flight.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    #[test]
    fn five_failures_block_the_username_until_the_window_passes() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let anna = user("anna");
        for _ in 0..MAX_FAILURES {
            drop(throttle.begin(Some(&anna), None, t0).unwrap());
        }
        assert!(throttle.begin(Some(&anna), None, t0).is_err());
        assert!(
            throttle
                .begin(Some(&user(" ANNA\u{3000}")), None, t0)
                .is_err(),
            "keyed on the normalised name"
        );
        assert!(
            throttle.begin(Some(&user("bertil")), None, t0).is_ok(),
            "others unaffected"
        );
        assert!(throttle.begin(Some(&anna), None, t0 + WINDOW).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let anna = user("anna");
        let held: Vec<_> = (0..MAX_FAILURES)
            .map(|_| throttle.begin(Some(&anna), None, t0).unwrap())
            .collect();
        assert!(
            throttle.begin(Some(&anna), None, t0).is_err(),
            "five attempts being checked leave no room for a sixth"
        );
        drop(held);
        assert!(throttle.begin(Some(&anna), None, t0).is_err());
    }

    #[test]
    fn success_frees_the_user_but_not_attempts_still_in_flight() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let anna = user("anna");
        for _ in 0..2 {
            drop(throttle.begin(Some(&anna), None, t0).unwrap());
        }
        let guesses: Vec<_> = (0..2)
            .map(|_| throttle.begin(Some(&anna), None, t0).unwrap())
            .collect();
        throttle.begin(Some(&anna), None, t0).unwrap().succeeded();
        // The two completed failures are forgotten, the two guesses in
        // flight are not: three more fit, not five.
        for _ in 0..3 {
            drop(throttle.begin(Some(&anna), None, t0).unwrap());
        }
        assert!(throttle.begin(Some(&anna), None, t0).is_err());
        drop(guesses);
    }

    #[test]
    fn cancelled_attempts_do_not_count() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let anna = user("anna");
        for _ in 0..10 * MAX_FAILURES {
            throttle.begin(Some(&anna), None, t0).unwrap().cancelled();
        }
        assert!(throttle.begin(Some(&anna), None, t0).is_ok());
    }

    /// A throttle after `MAX_FAILURES_PER_IP` failed sign-ins from
    /// 192.0.2.7 at `t0`, the `i`th with the name `name(i)`.
    fn address_used_up(
        name: impl Fn(usize) -> Option<Username>,
    ) -> (LoginThrottle, IpAddr, Instant) {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_IP {
            drop(throttle.begin(name(i).as_ref(), Some(ip), t0).unwrap());
        }
        (throttle, ip, t0)
    }

    #[test]
    fn many_failures_from_one_address_block_it() {
        let (throttle, ip, t0) = address_used_up(|i| Some(user(&format!("user{i}"))));
        let new = user("someone-new");
        assert!(throttle.begin(Some(&new), Some(ip), t0).is_err());
        assert!(
            throttle.begin(None, Some(ip), t0).is_err(),
            "nor with a name that is no username"
        );
        assert!(throttle.begin(Some(&new), None, t0).is_ok());
    }

    #[test]
    fn invalid_names_count_against_the_address_only() {
        let (throttle, ip, t0) = address_used_up(|_| None);
        assert!(throttle.begin(None, Some(ip), t0).is_err());
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(throttle.begin(None, Some(other), t0).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_IP {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            drop(throttle.begin(None, Some(ip), t0).unwrap());
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(throttle.begin(None, Some(same_64), t0).is_err());
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(throttle.begin(None, Some(next_64), t0).is_ok());
    }
}
