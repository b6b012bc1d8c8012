//! `qa-deploy authorities publish --bucket` against moto: what changed by content goes up (a
//! same-size change too), what is gone is deleted, nothing twice, and a tree the seed would
//! refuse uploads nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use qa_lookup_testbed::{client_env, workspace_root, Moto};

const CLI: &str = env!("CARGO_BIN_EXE_qa-deploy");
const BUCKET: &str = "qa-lookup-publish";

async fn publish(moto: &Moto, from: &Path, extra: &[&str]) -> Output {
    tokio::process::Command::new(CLI)
        .args(["authorities", "publish", "--bucket", BUCKET, "--from"])
        .arg(from)
        .args(extra)
        .envs(client_env(&moto.endpoint))
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("qa-deploy runs")
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Every object under the prefix with its content.
async fn objects(s3: &aws_sdk_s3::Client) -> BTreeMap<String, Vec<u8>> {
    let listed = s3.list_objects_v2().bucket(BUCKET).prefix("authorities/").send().await.unwrap();
    let mut objects = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_owned();
        let body = s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap().body.collect().await.unwrap();
        objects.insert(key, body.into_bytes().to_vec());
    }
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_uploads_what_changed_by_content_deletes_what_is_gone_and_a_broken_tree_uploads_nothing() {
    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start(work.path());
    let s3 = moto.s3().await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let tree = work.path().join("authorities");
    std::fs::create_dir_all(&tree).unwrap();
    qa_lookup_testbed::lifecycle::copy_tree(&workspace_root().join("tests/fixtures/authorities"), &tree);

    let first = publish(&moto, &tree, &[]).await;
    assert!(first.status.success(), "{}", printed(&first));
    let files = objects(&s3).await;
    assert!(files.contains_key("authorities/colours.yml") && files.len() >= 3, "{files:?}");
    assert!(printed(&first).contains("nothing was reloaded"), "{}", printed(&first));

    let again = publish(&moto, &tree, &[]).await;
    assert!(
        printed(&again).contains(&format!("0 added, 0 changed, 0 removed, {} unchanged", files.len())),
        "{}",
        printed(&again)
    );
    assert!(printed(&again).contains("nothing to publish"), "{}", printed(&again));

    // A same-size change (aws s3 sync skips it: aws-cli #1074), an addition and a removal.
    let colours = std::fs::read_to_string(tree.join("colours.yml")).unwrap();
    let recoloured = colours.replacen('e', "E", 1);
    assert_eq!(recoloured.len(), colours.len());
    std::fs::write(tree.join("colours.yml"), &recoloured).unwrap();
    std::fs::write(tree.join("shapes.yml"), "terms:\n  - id: circle\n    term: Circle\n").unwrap();
    std::fs::remove_file(tree.join("languages.yml")).unwrap();

    let dry = publish(&moto, &tree, &["--dry-run"]).await;
    assert!(printed(&dry).contains("1 added, 1 changed, 1 removed"), "{}", printed(&dry));
    assert_eq!(objects(&s3).await, files, "a dry run changes nothing");

    let changed = publish(&moto, &tree, &[]).await;
    assert!(changed.status.success(), "{}", printed(&changed));
    let after = objects(&s3).await;
    assert_eq!(after["authorities/colours.yml"], recoloured.as_bytes());
    assert!(after.contains_key("authorities/shapes.yml"));
    assert!(!after.contains_key("authorities/languages.yml"));

    std::fs::write(tree.join("broken.yml"), "terms: [\n").unwrap();
    std::fs::write(tree.join("colours.yml"), "terms: []\n").unwrap();
    let broken = publish(&moto, &tree, &[]).await;
    assert_eq!(broken.status.code(), Some(1), "{}", printed(&broken));
    assert!(printed(&broken).contains("broken.yml: invalid YAML") && printed(&broken).contains("nothing was uploaded"));
    assert_eq!(objects(&s3).await, after, "a broken tree uploads nothing");
}
