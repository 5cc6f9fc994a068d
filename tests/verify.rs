//! `envbuild verify` against a layout: the untouched build passes; an image with one byte
//! changed in one file of one layer fails, naming the platform, the layer and the file.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use envbuild::cache::Cache;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::wheel::sha256_file;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn envbuild(cache: &Path) -> Command {
    let mut cmd = Command::cargo_bin("envbuild").unwrap();
    cmd.arg("--spec")
        .arg(repo().join("fixtures/golden/envbuild.toml"))
        .arg("--cache")
        .arg(cache)
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn read_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&std::fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

/// Writes bytes as a blob; returns `sha256:<hex>`.
fn put(layout: &Path, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    std::fs::write(blob_path(layout, &digest), bytes).unwrap();
    digest
}

/// Rewrites the layer with one byte of `target` flipped; returns the new layer's bytes.
fn tamper_layer(layer: &Path, target: &str) -> Vec<u8> {
    let mut input = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(layer).unwrap(),
    ));
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut flipped = false;
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == target {
            data[0] ^= 0x01;
            flipped = true;
        }
        out.append_data(&mut header, &path, data.as_slice())
            .unwrap();
    }
    assert!(flipped, "`{target}` is not in the layer");
    let mut gz = out.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

#[test]
fn verify_passes_the_build_and_names_the_file_a_changed_byte_is_in() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = Cache::new(Some(cache_dir.clone()));
    for entry in std::fs::read_dir(repo().join("fixtures/wheels")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "whl") {
            cache.insert_file(&path, &sha256_file(&path)).unwrap();
        }
    }
    let out = tmp.path().join("out");
    envbuild(&cache_dir)
        .args(["build", "--offline", "--output"])
        .arg(format!("oci:{}", out.display()))
        .assert()
        .success();

    // 1. The untouched image passes, and stdout has its digest.
    let image = format!("oci:{}:prod", out.display());
    let ok = envbuild(&cache_dir)
        .args(["verify", "--offline", "--target", "prod", &image])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // 2. Flip one byte of `six.py` in the arm64 image's package layer that holds it, and
    //    rewrite the manifest, the index and the tag around it, as a tampering party would.
    let index_json: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let tag_entry = index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "prod")
        .unwrap()
        .clone();
    let mut index = read_json(&out, tag_entry["digest"].as_str().unwrap());
    let slot = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    let manifest_digest = index["manifests"][slot]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&out, &manifest_digest);
    let six = "opt/venv/lib/python3.11/site-packages/six.py";
    let layer_count = manifest["layers"].as_array().unwrap().len();
    let position = (0..layer_count)
        .find(|&i| {
            let digest = manifest["layers"][i]["digest"].as_str().unwrap();
            let mut names = tar::Archive::new(flate2::read::GzDecoder::new(
                std::fs::File::open(blob_path(&out, digest)).unwrap(),
            ));
            names
                .entries()
                .unwrap()
                .any(|e| e.unwrap().path().unwrap().to_string_lossy() == six)
        })
        .expect("a layer holds six.py");
    let old_layer = manifest["layers"][position]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = tamper_layer(&blob_path(&out, &old_layer), six);
    let new_layer = put(&out, &bytes);
    manifest["layers"][position]["digest"] = new_layer.clone().into();
    manifest["layers"][position]["size"] = bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][slot]["digest"] = put(&out, &manifest_bytes).into();
    index["manifests"][slot]["size"] = manifest_bytes.len().into();
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let mut entry = tag_entry.clone();
    entry["digest"] = put(&out, &index_bytes).into();
    entry["size"] = index_bytes.len().into();
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [entry],
    });
    std::fs::write(out.join("index.json"), doc.to_string()).unwrap();

    // 3. verify names the platform, the layer (1-based) with both digests, and the file.
    let bad = envbuild(&cache_dir)
        .args(["verify", "--offline", "--target", "prod", &image])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    let want_layer = format!(
        "linux/arm64: layer {} differs (expected `{old_layer}`, found `{new_layer}`)",
        position + 1
    );
    assert!(stderr.contains(&want_layer), "{stderr}");
    assert!(
        stderr.contains(&format!("first differing file `/{six}`")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
