use async_trait::async_trait;

use super::StorageResult;
use crate::model::{Device, DeviceId, UserId};

/// A device and the hash of its current token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Whose device.
    pub user: UserId,
    /// The device.
    pub device: Device,
    /// SHA-256 of the device token's secret. The token itself is never stored.
    pub token_hash: Vec<u8>,
}

/// Logged-in devices and their tokens.
///
/// # Contract
/// - A device is keyed by `(user, device.id)`. `put_device` inserts or replaces it
///   (a second login from the same device replaces its token).
/// - `device` fails with `NotFound` when there is no such device.
/// - `devices` lists a user's devices in any order.
/// - `delete_device` returns whether it existed; `delete_other_devices` deletes all of a
///   user's devices except `keep` and returns the ids it deleted.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Inserts or replaces a device.
    async fn put_device(&self, record: DeviceRecord) -> StorageResult<()>;
    /// One device.
    async fn device(&self, user: UserId, device: &DeviceId) -> StorageResult<DeviceRecord>;
    /// All of a user's devices.
    async fn devices(&self, user: UserId) -> StorageResult<Vec<DeviceRecord>>;
    /// Deletes one device (revoking its token).
    async fn delete_device(&self, user: UserId, device: &DeviceId) -> StorageResult<bool>;
    /// Deletes every device of `user` except `keep`.
    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: &DeviceId,
    ) -> StorageResult<Vec<DeviceId>>;
}
