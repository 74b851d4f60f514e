//! A customer acting at a precise moment: a real store whose object is replaced (a new
//! version, as an upload would make) the moment dropfolder opens it for reading.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dropfolder::store::*;

#[derive(Debug)]
pub struct ReplaceOnGet {
    pub store: Arc<dyn ObjectStore>,
    key: String,
    replacement: Mutex<Option<Vec<u8>>>,
}

impl ReplaceOnGet {
    pub fn new(store: Arc<dyn ObjectStore>, key: &str, replacement: Vec<u8>) -> ReplaceOnGet {
        ReplaceOnGet {
            store,
            key: key.into(),
            replacement: Mutex::new(Some(replacement)),
        }
    }
}

#[async_trait]
impl ObjectStore for ReplaceOnGet {
    fn describe(&self) -> String {
        self.store.describe()
    }
    async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<ListPage, StoreError> {
        self.store.list_page(prefix, token).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.store.head(key).await
    }
    async fn get(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        let opened = self.store.get(key).await?;
        let replacement = self
            .replacement
            .lock()
            .ok()
            .and_then(|mut r| if key == self.key { r.take() } else { None });
        if let Some(bytes) = replacement {
            self.store
                .put(key, PutBody::Bytes(bytes.into()), PutMode::Overwrite)
                .await?;
        }
        Ok(opened)
    }
    async fn put(&self, key: &str, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError> {
        self.store.put(key, body, mode).await
    }
    async fn copy(
        &self,
        from: &str,
        to: &str,
        version: &str,
        size: u64,
    ) -> Result<ObjectMeta, StoreError> {
        self.store.copy(from, to, version, size).await
    }
    async fn delete(&self, key: &str, version: &str) -> Result<(), StoreError> {
        self.store.delete(key, version).await
    }
}
