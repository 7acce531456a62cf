//! [`DeviceStore`] on SQL.

use async_trait::async_trait;
use im_core::model::{Device, DeviceId, Timestamp, UserId};
use im_core::storage::{DeviceRecord, DeviceStore, StorageError, StorageResult};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::entity::device;
use super::{SqlStorage, db_error, i, parse_platform, platform_str, u};

fn to_record(m: device::Model) -> StorageResult<DeviceRecord> {
    Ok(DeviceRecord {
        user: UserId(u(m.user_id)),
        device: Device {
            id: DeviceId::new(m.device_id)
                .map_err(|e| StorageError::Backend(format!("bad device id stored: {e}")))?,
            name: m.name,
            platform: parse_platform(&m.platform),
            logged_in_at: Timestamp(m.logged_in_at),
            expires_at: Timestamp(m.expires_at),
        },
        token_hash: hex_decode(&m.token_hash)?,
    })
}

fn hex_decode(s: &str) -> StorageResult<Vec<u8>> {
    let bad = || StorageError::Backend("bad token hash stored".into());
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(s.get(k..k + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

#[async_trait]
impl DeviceStore for SqlStorage {
    async fn put_device(&self, record: DeviceRecord) -> StorageResult<()> {
        let row = device::ActiveModel {
            user_id: Set(i(record.user.0)),
            device_id: Set(record.device.id.as_str().to_owned()),
            name: Set(record.device.name),
            platform: Set(platform_str(record.device.platform).to_owned()),
            logged_in_at: Set(record.device.logged_in_at.0),
            expires_at: Set(record.device.expires_at.0),
            token_hash: Set(super::hex(&record.token_hash)),
        };
        let replace = OnConflict::columns([device::Column::UserId, device::Column::DeviceId])
            .update_columns([
                device::Column::Name,
                device::Column::Platform,
                device::Column::LoggedInAt,
                device::Column::ExpiresAt,
                device::Column::TokenHash,
            ])
            .to_owned();
        device::Entity::insert(row)
            .on_conflict(replace)
            .exec_without_returning(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn device(&self, user: UserId, device: &DeviceId) -> StorageResult<DeviceRecord> {
        device::Entity::find_by_id((i(user.0), device.as_str().to_owned()))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(to_record)
            .ok_or(StorageError::NotFound("device"))?
    }

    async fn devices(&self, user: UserId) -> StorageResult<Vec<DeviceRecord>> {
        device::Entity::find()
            .filter(device::Column::UserId.eq(i(user.0)))
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_record)
            .collect()
    }

    async fn delete_device(&self, user: UserId, device: &DeviceId) -> StorageResult<bool> {
        let done = device::Entity::delete_by_id((i(user.0), device.as_str().to_owned()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected > 0)
    }

    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: &DeviceId,
    ) -> StorageResult<Vec<DeviceId>> {
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        let others = device::Column::UserId
            .eq(i(user.0))
            .and(device::Column::DeviceId.ne(keep.as_str()));
        let gone: Vec<DeviceId> = device::Entity::find()
            .filter(others.clone())
            .all(&txn)
            .await
            .map_err(db_error)?
            .into_iter()
            .filter_map(|m| DeviceId::new(m.device_id).ok())
            .collect();
        device::Entity::delete_many()
            .filter(others)
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(gone)
    }
}
