//! The device policy: how many sessions a user may have at once, in all and per
//! platform, and whether a login over the limit closes the oldest sessions or is refused.
//!
//! The count spans every node (it comes from `Presence`). A device's new session replaces
//! its old one and never counts twice. The check runs before a login stores its device
//! and token, so a refused login leaves nothing behind.

use std::collections::HashMap;

use super::Shared;
use super::config::ExcessSessions;
use super::error::{ApiError, ApiResult};
use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::protocol::ErrorCode;

/// What a new session may do, decided before it registers.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Devices whose sessions must close to make room (oldest first).
    pub(crate) kick: Vec<DeviceId>,
    /// Whether the user had any device online before this one.
    pub(crate) was_online: bool,
}

impl Shared {
    /// Applies the device policy to a session about to start.
    pub(crate) async fn admit(
        &self,
        user: UserId,
        device: &DeviceId,
        platform: Platform,
    ) -> ApiResult<Admission> {
        let entries = match self.presence.online(&[user]).await {
            Ok(entries) => entries,
            Err(e) => {
                // Presence is down: admit (the limit is a policy, not a safety rule) and
                // say so in the log.
                tracing::warn!(error = %e, "presence lookup failed; device policy not applied");
                return Ok(Admission::default());
            }
        };
        let was_online = !entries.is_empty();
        // The other devices, each once, oldest session first.
        let mut others: HashMap<DeviceId, (Platform, Timestamp)> = HashMap::new();
        for e in entries.into_iter().filter(|e| &e.device != device) {
            let slot = others.entry(e.device).or_insert((e.platform, e.since));
            slot.1 = slot.1.min(e.since);
        }
        let mut others: Vec<(DeviceId, Platform, Timestamp)> =
            others.into_iter().map(|(d, (p, t))| (d, p, t)).collect();
        others.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));

        let policy = &self.config.device_policy;
        let mut kick = Vec::new();
        if let Some(max) = policy.platform_limit(platform) {
            let same: Vec<&DeviceId> = others
                .iter()
                .filter(|(_, p, _)| *p == platform)
                .map(|(d, _, _)| d)
                .collect();
            let excess = (same.len() + 1).saturating_sub(max.max(1));
            kick.extend(same.into_iter().take(excess).cloned());
        }
        let remaining: Vec<&DeviceId> = others
            .iter()
            .map(|(d, _, _)| d)
            .filter(|d| !kick.contains(d))
            .collect();
        let excess = (remaining.len() + 1).saturating_sub(policy.max_sessions.max(1));
        kick.extend(remaining.into_iter().take(excess).cloned());

        if !kick.is_empty() && policy.on_excess == ExcessSessions::RefuseNew {
            metrics::counter!("im_logins_refused_total", "reason" => "device_limit").increment(1);
            return Err(ApiError::new(
                ErrorCode::DeviceLimit,
                "too many devices are logged in; log one out first",
            ));
        }
        Ok(Admission { kick, was_online })
    }
}
