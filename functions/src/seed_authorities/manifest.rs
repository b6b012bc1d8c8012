//! What an earlier seed wrote: key → ETag and size, kept in the target under a hidden name so
//! qa_server never loads it. Only files listed here are ever replaced or pruned.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::keys::MANIFEST_NAME;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// Relative path (with `/`) → the object it was written from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, Entry>,
}

impl Manifest {
    /// The target's manifest; an absent or unreadable one reads as empty (everything is new).
    pub fn read(target: &Path) -> Manifest {
        std::fs::read(target.join(MANIFEST_NAME))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serialises")
    }
}
