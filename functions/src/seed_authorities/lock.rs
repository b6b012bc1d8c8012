//! One seed at a time on a target: CloudFormation may deliver a request twice, and a terminal
//! seed may run beside the stack's. Without this, a second seed removes the first one's staging
//! folder as stale and the first fails. The lock is an advisory lock on a file in the target:
//! the kernel releases it when its holder exits, and EFS (an NFSv4.1 server) keeps lock state
//! under a client lease that it releases when a crashed client stops renewing it (NFSv4's
//! lease-based locking; IBM's "Locking in NFS version 4"), so a crashed holder cannot keep it
//! for ever. The second seed waits, then finds nothing to do.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::keys::LOCK_NAME;

/// Held until dropped.
pub struct TargetLock {
    _file: File,
}

pub async fn hold(target: &Path) -> Result<TargetLock, String> {
    let path = target.join(LOCK_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the seed's lock {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(TargetLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!(target = %target.display(), "another seed of this target is running; waiting for it");
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(format!("cannot lock {}: {error}", path.display()));
        }
    }
    tokio::task::spawn_blocking(move || file.lock().map(|()| TargetLock { _file: file }))
        .await
        .map_err(|e| format!("the wait for the seed's lock broke off: {e}"))?
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let folder = tempfile::tempdir().unwrap();
        let first = hold(folder.path()).await.unwrap();
        let target = folder.path().to_path_buf();
        let second = tokio::spawn(async move { hold(&target).await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second seed waits");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    }
}
