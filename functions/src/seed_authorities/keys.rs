//! Which S3 keys may become files under the target: only plain relative paths that stay inside it.

use std::path::PathBuf;

/// The longest file name most file systems (EFS included) accept, in bytes.
const MAX_SEGMENT_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 4096;

/// Names the seed keeps for itself in the target; no object may land on them.
pub const MANIFEST_NAME: &str = ".seed-manifest.json";
pub const STAGING_PREFIX: &str = ".seed-staging-";
pub const LOCK_NAME: &str = ".seed-lock";

/// The path under the target for `key` below `prefix`, or why it is unsafe.
pub fn relative_path(key: &str, prefix: &str) -> Result<PathBuf, &'static str> {
    let relative = key.strip_prefix(prefix).ok_or("it is not under the prefix")?;
    if relative.is_empty() {
        return Err("it is the prefix itself");
    }
    if relative.contains('\0') {
        return Err("it contains a NUL character");
    }
    if relative.contains('\\') {
        return Err("it contains a backslash");
    }
    if relative.starts_with('/') {
        return Err("it would be an absolute path");
    }
    if relative.len() > MAX_PATH_BYTES {
        return Err("it is longer than 4096 bytes");
    }
    let segments: Vec<&str> = relative.split('/').collect();
    for segment in &segments {
        match *segment {
            "" => return Err("it has an empty path segment (//)"),
            "." | ".." => return Err("it has a . or .. segment"),
            s if s.len() > MAX_SEGMENT_BYTES => return Err("it has a path segment longer than 255 bytes"),
            _ => {}
        }
    }
    if segments[0] == MANIFEST_NAME || segments[0] == LOCK_NAME || segments[0].starts_with(STAGING_PREFIX) {
        return Err("it uses a name the seed keeps for itself");
    }
    Ok(segments.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_map_below_the_target() {
        assert_eq!(
            relative_path("authorities/linked_data/loc.json", "authorities/").unwrap(),
            PathBuf::from("linked_data/loc.json")
        );
        assert_eq!(relative_path("a.yml", "").unwrap(), PathBuf::from("a.yml"));
    }

    #[test]
    fn every_unsafe_kind_is_refused() {
        let long = "x".repeat(256);
        for (key, why) in [
            ("authorities/../etc/passwd", "a . or .. segment"),
            ("authorities/./x.yml", "a . or .. segment"),
            ("authorities//etc/passwd", "absolute"),
            ("authorities/a//b.yml", "empty path segment"),
            ("authorities/a\\..\\b.yml", "backslash"),
            ("authorities/a\0.yml", "NUL"),
            (&format!("authorities/{long}.yml"), "longer than 255"),
            ("authorities/.seed-manifest.json", "keeps for itself"),
            ("authorities/.seed-staging-1/x.yml", "keeps for itself"),
            ("authorities/", "the prefix itself"),
        ] {
            let error = relative_path(key, "authorities/").unwrap_err();
            assert!(error.contains(why), "{key:?}: {error}");
        }
    }
}
