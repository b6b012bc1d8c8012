//! Whether qa_server would load any authority from the tree under the prefix, decided from the S3
//! listing alone, before anything is downloaded or written.
//!
//! The target is mounted as the app's `config/authorities`. What the app loads from there
//! (questioning_authority 5.10.0, the version qa_server 8.0.1 runs; REFERENCE.md, "The service
//! being deployed"):
//! - local authorities: `Qa::Authorities::Local.names` lists the entries of its `local_path`
//!   (`config/authorities` in qa_server) whose name matches `/yml$/`, registering each as
//!   `File.basename(name, ".yml")`, and `FileBasedAuthority` then reads `<name>.yml`. So only files
//!   named `*.yml` directly in the folder work: not `*.yaml` (it does not end in `yml`), not
//!   `*.YML` (the match is case-sensitive), not a `*.yml` in a subfolder.
//! - linked-data authorities: `Qa::Authorities::LinkedData::AuthorityService.load_authorities` globs
//!   `config/authorities/linked_data/*.json`: directly in `linked_data/`, case-sensitive, and not
//!   hidden (Ruby's `Dir[]` skips names starting with a dot). `linked_data/DISABLED/*.json` is
//!   not loaded.
//! - `linked_data/scenarios/*_validation.yml` are qa_server's checks of authorities loaded by the
//!   rule above: on their own they load nothing, so they do not count.
//!
//! A tree with neither kind is almost always the wrong prefix — most often upstream's layout, where
//! the files sit under `config/authorities/` inside the bucket (`sync-s3-prod.yml`). The refusal
//! then names the deeper prefix that does hold such a tree.

use std::collections::BTreeMap;

/// The folder qa_server reads linked-data authorities from. No `config/authorities` root lies at
/// or below it.
const LINKED_DATA: &str = "linked_data";
/// Other trees listed besides the suggested one, and examples of what was found instead.
const LISTED: usize = 3;

/// How many authorities qa_server would load from a tree, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Top-level `*.yml` files.
    pub local: usize,
    /// `linked_data/*.json` files.
    pub linked_data: usize,
}

impl Layout {
    /// The layout of a tree given as paths relative to its root, `/`-separated.
    pub fn of<'a>(relatives: impl IntoIterator<Item = &'a str>) -> Layout {
        let mut layout = Layout::default();
        for relative in relatives {
            layout.add(relative);
        }
        layout
    }

    fn add(&mut self, relative: &str) {
        if is_local_authority(relative) {
            self.local += 1;
        } else if is_linked_data_authority(relative) {
            self.linked_data += 1;
        }
    }

    pub fn loads_any(&self) -> bool {
        self.local + self.linked_data > 0
    }

    fn total(&self) -> usize {
        self.local + self.linked_data
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} top-level *.yml, {} linked_data/*.json", self.local, self.linked_data)
    }
}

/// A top-level `<name>.yml`: a local authority.
pub fn is_local_authority(relative: &str) -> bool {
    !relative.contains('/') && relative.len() > ".yml".len() && relative.ends_with(".yml")
}

/// `linked_data/<name>.json`, not hidden: a linked-data authority.
pub fn is_linked_data_authority(relative: &str) -> bool {
    relative.strip_prefix("linked_data/").is_some_and(|name| {
        !name.contains('/') && !name.starts_with('.') && name.len() > ".json".len() && name.ends_with(".json")
    })
}

/// Why the objects `keys` (all under `prefix`, none of them a folder marker) must not be seeded:
/// `None` when qa_server would load at least one authority from them, or when there are none
/// (whether an empty prefix is allowed is `AllowEmpty`'s business, decided by the caller).
pub fn refusal(bucket: &str, prefix: &str, keys: &[&str]) -> Option<String> {
    let relatives: Vec<&str> = keys.iter().filter_map(|key| key.strip_prefix(prefix)).collect();
    if relatives.is_empty() || Layout::of(relatives.iter().copied()).loads_any() {
        return None;
    }
    let from = format!("s3://{bucket}/{prefix}");
    let mut reason = format!(
        "no authority qa_server would load under {from}: expected local authorities (*.yml) directly under the \
         prefix or linked-data authorities (linked_data/*.json), found {} object(s) and none of either kind",
        relatives.len()
    );
    let trees = deeper_trees(prefix, &relatives);
    if let Some((best, layout)) = trees.first() {
        let deeper = format!("{prefix}{best}");
        reason.push_str(&format!(" — they sit under s3://{bucket}/{deeper} ({layout})"));
        let others: Vec<String> = trees
            .iter()
            .skip(1)
            // Trees inside or around the suggested one are part of it; a folder of *.yml alone
            // is worth naming only when the suggested tree has no linked-data authorities either.
            .filter(|(other, _)| !other.starts_with(best.as_str()) && !best.starts_with(other.as_str()))
            .filter(|(_, other)| (other.linked_data > 0) == (layout.linked_data > 0))
            .take(LISTED)
            .map(|(other, layout)| format!("s3://{bucket}/{prefix}{other} ({layout})"))
            .collect();
        if !others.is_empty() {
            reason.push_str(&format!("; other such trees: {}", others.join(", ")));
        }
        reason.push_str(&format!("; nothing was written — {}", set_prefix(&deeper)));
        return Some(reason);
    }
    if let Some(parent) = parent_of_linked_data(prefix, &relatives) {
        reason.push_str(&format!(
            " — the prefix is the linked_data folder itself (its *.json are at the top); nothing was written — {}",
            set_prefix(&parent)
        ));
        return Some(reason);
    }
    let examples: Vec<String> = relatives.iter().take(LISTED).map(|r| format!("{r:?}")).collect();
    let more = relatives.len().saturating_sub(LISTED);
    reason.push_str(&format!(" (e.g. {}{})", examples.join(", "), if more > 0 { ", …" } else { "" }));
    let misnamed: Vec<&str> = relatives
        .iter()
        .copied()
        .filter(|r| {
            let lower = r.to_ascii_lowercase();
            !r.contains('/') && (lower.ends_with(".yaml") || lower.ends_with(".yml"))
        })
        .take(LISTED)
        .collect();
    if !misnamed.is_empty() {
        reason.push_str(&format!(
            "; qa_server reads only names ending in .yml (lower case), so it ignores {misnamed:?} — rename them"
        ));
    }
    reason.push_str(&format!(
        "; nothing was written — upload the app's config/authorities folder itself \
         (aws s3 sync config/authorities {from}) or point AuthoritiesPrefix (for qa-deploy seed, --prefix) at it. \
         AllowEmpty does not apply: it only allows a prefix with no objects at all"
    ));
    Some(reason)
}

fn set_prefix(prefix: &str) -> String {
    let shown = if prefix.is_empty() { "\"\" (the bucket's root)".to_owned() } else { prefix.to_owned() };
    format!("set AuthoritiesPrefix (the resource's Prefix; for qa-deploy seed, --prefix) to {shown}")
}

/// Folders below the prefix (relative to it, ending in `/`) from which qa_server would load
/// authorities: first those with linked-data authorities (the mark of a qa_server tree, where a
/// folder of `*.yml` alone may be anything, e.g. upstream's `config/locales/`), then the most
/// authorities, then the shallowest. Folders at or below a `linked_data` folder are never a
/// `config/authorities` root: `linked_data/scenarios/` holds `*_validation.yml` that would
/// otherwise pass for local authorities.
fn deeper_trees(prefix: &str, relatives: &[&str]) -> Vec<(String, Layout)> {
    if prefix.split('/').any(|segment| segment == LINKED_DATA) {
        return Vec::new();
    }
    let mut found: BTreeMap<&str, Layout> = BTreeMap::new();
    for relative in relatives {
        for (index, _) in relative.match_indices('/') {
            let folder = &relative[..=index];
            if folder.split('/').any(|segment| segment == LINKED_DATA) {
                break;
            }
            found.entry(folder).or_default().add(&relative[index + 1..]);
        }
    }
    let mut trees: Vec<(String, Layout)> =
        found.into_iter().filter(|(_, layout)| layout.loads_any()).map(|(f, l)| (f.to_owned(), l)).collect();
    trees.sort_by(|(a, la), (b, lb)| {
        (lb.linked_data > 0)
            .cmp(&(la.linked_data > 0))
            .then(lb.total().cmp(&la.total()))
            .then(a.matches('/').count().cmp(&b.matches('/').count()))
            .then(a.cmp(b))
    });
    trees
}

/// The prefix's parent when the prefix is a `linked_data/` folder holding `*.json` at its top.
fn parent_of_linked_data(prefix: &str, relatives: &[&str]) -> Option<String> {
    let parent = prefix.strip_suffix("linked_data/")?;
    if !(parent.is_empty() || parent.ends_with('/')) {
        return None;
    }
    let has_json = relatives.iter().any(|r| is_linked_data_authority(&format!("linked_data/{r}")));
    has_json.then(|| parent.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn refused(prefix: &str, relatives: &[&str]) -> Option<String> {
        let keys: Vec<String> = relatives.iter().map(|r| format!("{prefix}{r}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        refusal("b", prefix, &keys)
    }

    /// Every file below `folder`, as `/`-separated paths relative to it.
    fn files(folder: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![folder.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                } else {
                    let relative = entry.path().strip_prefix(folder).unwrap().to_path_buf();
                    found.push(
                        relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"),
                    );
                }
            }
        }
        found.sort();
        found
    }

    fn sample_fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/authorities")
    }

    fn real_configuration() -> Option<PathBuf> {
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/qa_server_config/authorities");
        real.is_dir().then_some(real)
    }

    #[test]
    fn exactly_the_files_qa_server_loads_count() {
        for relative in ["languages.yml", ".hidden.yml", "linked_data/loc.json", "linked_data/LOC_direct.json"] {
            assert!(Layout::of([relative]).loads_any(), "{relative}");
        }
        for relative in [
            "languages.yaml",
            "languages.YML",
            ".yml",
            "sub/languages.yml",
            "linked_data/scenarios/loc_validation.yml",
            "linked_data/DISABLED/cerl.json",
            "linked_data/.hidden.json",
            "linked_data/.json",
            "linked_data/loc.JSON",
            "loc.json",
            "README.md",
        ] {
            assert!(!Layout::of([relative]).loads_any(), "{relative}");
        }
    }

    #[test]
    fn top_level_yml_alone_passes() {
        assert_eq!(refused("authorities/", &["languages.yml"]), None);
    }

    #[test]
    fn linked_data_json_alone_passes() {
        assert_eq!(
            refused("authorities/", &["linked_data/loc.json", "linked_data/scenarios/loc_validation.yml"]),
            None
        );
    }

    #[test]
    fn scenarios_without_linked_data_json_are_refused_without_suggesting_the_scenarios_folder() {
        let reason = refused("authorities/", &["linked_data/scenarios/loc_validation.yml"]).unwrap();
        assert!(
            reason.starts_with(
                "no authority qa_server would load under s3://b/authorities/: expected local authorities (*.yml) \
                 directly under the prefix or linked-data authorities (linked_data/*.json), found 1 object(s) and none of \
                 either kind"
            ),
            "{reason}"
        );
        assert!(!reason.contains("scenarios/ ("), "{reason}");
        assert!(reason.contains("\"linked_data/scenarios/loc_validation.yml\""), "{reason}");
        assert!(reason.contains("AllowEmpty does not apply"), "{reason}");
    }

    #[test]
    fn a_nested_config_authorities_tree_is_refused_naming_the_deeper_prefix() {
        let reason = refused(
            "authorities/",
            &[
                "config/authorities/languages.yml",
                "config/authorities/linked_data/loc.json",
                "config/authorities/linked_data/scenarios/loc_validation.yml",
                "config/authorities/extra/one.yml",
                "config/locales/qa_server.en.yml",
            ],
        )
        .unwrap();
        assert!(
            reason.ends_with(
                "found 5 object(s) and none of either kind — they sit under s3://b/authorities/config/authorities/ \
                 (1 top-level *.yml, 1 linked_data/*.json); nothing was written — set AuthoritiesPrefix \
                 (the resource's Prefix; for qa-deploy seed, --prefix) to authorities/config/authorities/"
            ),
            "{reason}"
        );
    }

    #[test]
    fn separate_trees_are_all_named_the_largest_first() {
        let reason =
            refused("", &["prod/config/authorities/a.yml", "prod/config/authorities/b.yml", "staging/a.yml"]).unwrap();
        assert!(reason.contains("they sit under s3://b/prod/config/authorities/ (2 top-level"), "{reason}");
        assert!(reason.contains("other such trees: s3://b/staging/ (1 top-level"), "{reason}");
        assert!(reason.ends_with("to prod/config/authorities/"), "{reason}");
    }

    #[test]
    fn a_tree_with_linked_data_wins_over_a_larger_folder_of_yml() {
        let reason = refused(
            "",
            &["locales/a.yml", "locales/b.yml", "locales/c.yml", "x/config/authorities/linked_data/loc.json"],
        )
        .unwrap();
        assert!(reason.contains("they sit under s3://b/x/config/authorities/ (0 top-level"), "{reason}");
        assert!(!reason.contains("other such trees"), "{reason}");
    }

    #[test]
    fn a_prefix_inside_linked_data_names_its_parent() {
        let reason = refused("authorities/linked_data/", &["loc.json", "scenarios/loc_validation.yml"]).unwrap();
        assert!(reason.contains("the prefix is the linked_data folder itself"), "{reason}");
        assert!(reason.ends_with("to authorities/"), "{reason}");
        let reason = refused("linked_data/", &["loc.json"]).unwrap();
        assert!(reason.ends_with("to \"\" (the bucket's root)"), "{reason}");
    }

    #[test]
    fn yaml_and_upper_case_names_are_pointed_out() {
        let reason = refused("p/", &["languages.yaml", "COLOURS.YML"]).unwrap();
        assert!(reason.contains("it ignores [\"languages.yaml\", \"COLOURS.YML\"] — rename them"), "{reason}");
    }

    #[test]
    fn no_objects_is_left_to_allow_empty() {
        assert_eq!(refusal("b", "p/", &[]), None);
    }

    #[test]
    fn the_sample_fixture_and_the_real_configuration_pass_and_their_nested_copies_name_the_prefix() {
        let mut folders = vec![sample_fixture()];
        folders.extend(real_configuration());
        for folder in folders {
            let relatives = files(&folder);
            let relatives: Vec<&str> = relatives.iter().map(String::as_str).collect();
            let layout = Layout::of(relatives.iter().copied());
            assert!(layout.local > 0 && layout.linked_data > 0, "{}: {layout}", folder.display());
            assert_eq!(refused("authorities/", &relatives), None, "{}", folder.display());
            let nested: Vec<String> = relatives.iter().map(|r| format!("config/authorities/{r}")).collect();
            let nested: Vec<&str> = nested.iter().map(String::as_str).collect();
            let reason = refused("authorities/", &nested).unwrap();
            assert!(
                reason.contains(&format!("they sit under s3://b/authorities/config/authorities/ ({layout})")),
                "{}: {reason}",
                folder.display()
            );
            assert!(!reason.contains("other such trees"), "{}: {reason}", folder.display());
            assert!(reason.ends_with("to authorities/config/authorities/"), "{reason}");
        }
    }
}
