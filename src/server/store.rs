//! Where call records go when a call ends. The server writes through the [`RecordStore`]
//! interface; [`MemoryStore`] keeps them in memory and serves `GET …/record` until a
//! database-backed store takes its place.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::protocol::CallRecord;

/// A store of ended calls' records, keyed by tenant and call id.
pub trait RecordStore: Send + Sync {
    /// Keeps the record of an ended call. An error is logged by the caller; the record
    /// was still sent to the platform and the call's feeds.
    fn put(&self, tenant: &str, call_id: &str, record: &CallRecord) -> Result<(), StoreError>;
    /// The record of a tenant's ended call.
    fn get(&self, tenant: &str, call_id: &str) -> Result<Option<CallRecord>, StoreError>;
}

/// A store that could not do its work.
#[derive(Debug, thiserror::Error)]
#[error("record store: {0}")]
pub struct StoreError(pub String);

/// Records in memory: lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<(String, String), CallRecord>>,
}

impl RecordStore for MemoryStore {
    fn put(&self, tenant: &str, call_id: &str, record: &CallRecord) -> Result<(), StoreError> {
        self.records
            .lock()
            .map_err(|_| StoreError("poisoned lock".into()))?
            .insert((tenant.to_string(), call_id.to_string()), record.clone());
        Ok(())
    }

    fn get(&self, tenant: &str, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .map_err(|_| StoreError("poisoned lock".into()))?
            .get(&(tenant.to_string(), call_id.to_string()))
            .cloned())
    }
}
