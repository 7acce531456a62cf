//! Rate limits: login and registration attempts per username and per peer address, and
//! sends and searches per user. Each is a keyed GCRA limiter (`governor`): a steady rate
//! with a burst. Exceeding one gives `rate_limited` with the time after which a retry passes.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use crate::model::UserId;

/// Rate limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Login attempts per username and address per minute (all attempts, right or
    /// wrong). Keyed by both, so a stranger's flood cannot lock the owner out from
    /// elsewhere; floods from many addresses meet the per-address limit. Default 10.
    pub logins_per_username_per_minute: u32,
    /// Login and registration attempts per peer IP address per minute. Default 60.
    pub auth_per_address_per_minute: u32,
    /// Messages sent per user per second, sustained. Default 20.
    pub sends_per_user_per_second: u32,
    /// Messages a user may send in a burst above the sustained rate. Default 100.
    pub send_burst: u32,
    /// Searches per user per minute (a burst of as many, then one every 60/n seconds):
    /// a search reads an index, and a flood of them would slow everyone's. Default 60.
    pub searches_per_user_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            logins_per_username_per_minute: 10,
            auth_per_address_per_minute: 60,
            sends_per_user_per_second: 20,
            send_burst: 100,
            searches_per_user_per_minute: 60,
        }
    }
}

impl RateLimits {
    /// No limits at all (benchmarks, trusted internal use).
    pub fn unlimited() -> Self {
        RateLimits {
            logins_per_username_per_minute: 0,
            auth_per_address_per_minute: 0,
            sends_per_user_per_second: 0,
            send_burst: 0,
            searches_per_user_per_minute: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Limiters {
    login_user: Option<DefaultKeyedRateLimiter<(String, Option<IpAddr>)>>,
    auth_addr: Option<DefaultKeyedRateLimiter<IpAddr>>,
    sends: Option<DefaultKeyedRateLimiter<UserId>>,
    searches: Option<DefaultKeyedRateLimiter<UserId>>,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    quota: Option<Quota>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    quota.map(RateLimiter::keyed)
}

impl Limiters {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        let per_minute = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        let sends = NonZeroU32::new(limits.sends_per_user_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.send_burst).unwrap_or(rate).max(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        Limiters {
            login_user: keyed(per_minute(limits.logins_per_username_per_minute)),
            auth_addr: keyed(per_minute(limits.auth_per_address_per_minute)),
            sends: keyed(sends),
            searches: keyed(per_minute(limits.searches_per_user_per_minute)),
        }
    }

    /// One login attempt for `username` from `addr`.
    pub(crate) fn login(&self, username: &str, addr: Option<IpAddr>) -> ApiResult<()> {
        self.address(addr)?;
        let key = (username.to_ascii_lowercase(), addr);
        check(
            &self.login_user,
            &key,
            "too many login attempts for this account",
        )
    }

    /// One registration (or other unauthenticated attempt) from `addr`.
    pub(crate) fn address(&self, addr: Option<IpAddr>) -> ApiResult<()> {
        match addr {
            Some(ip) => check(&self.auth_addr, &ip, "too many attempts from this address"),
            None => Ok(()),
        }
    }

    /// One message from `user`.
    pub(crate) fn send(&self, user: UserId) -> ApiResult<()> {
        check(&self.sends, &user, "sending too fast")
    }

    /// One search by `user`.
    pub(crate) fn search(&self, user: UserId) -> ApiResult<()> {
        check(&self.searches, &user, "searching too often")
    }

    /// Forgets keys whose limits have fully recovered, so memory tracks active keys only.
    pub(crate) fn housekeeping(&self) {
        if let Some(l) = &self.login_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.auth_addr {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.sends, &self.searches].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
    what: &'static str,
) -> ApiResult<()> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        let wait: Duration = not_until.wait_time_from(limiter.clock().now());
        ApiError::rate_limited(what, wait)
    })
}
