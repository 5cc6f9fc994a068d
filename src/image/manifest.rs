//! Image manifests and indexes (OCI image spec, `manifest.md` and `image-index.md`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Descriptor, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, canonical_json};
use crate::platform::Platform;

/// The image manifest for one platform, as canonical JSON bytes.
pub fn manifest_json(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), 2.into());
    m.insert("mediaType".into(), MEDIA_TYPE_MANIFEST.into());
    m.insert("config".into(), config.to_value());
    let layers = layers.iter().map(Descriptor::to_value).collect();
    m.insert("layers".into(), Value::Array(layers));
    insert_annotations(&mut m, annotations);
    canonical_json(&Value::Object(m))
}

/// An image index naming one manifest per platform, as canonical JSON bytes.
pub fn index_json(
    manifests: &[(Descriptor, Platform)],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let entries = manifests
        .iter()
        .map(|(desc, platform)| {
            let mut v = desc.to_value();
            if let Value::Object(m) = &mut v {
                m.insert("platform".into(), platform_value(*platform));
            }
            v
        })
        .collect();

    let mut m = Map::new();
    m.insert("schemaVersion".into(), 2.into());
    m.insert("mediaType".into(), MEDIA_TYPE_INDEX.into());
    m.insert("manifests".into(), Value::Array(entries));
    insert_annotations(&mut m, annotations);
    canonical_json(&Value::Object(m))
}

/// The `platform` object of an index entry.
pub(crate) fn platform_value(platform: Platform) -> Value {
    let mut p = Map::new();
    p.insert("architecture".into(), platform.oci_arch().into());
    p.insert("os".into(), "linux".into());
    Value::Object(p)
}

/// Annotations are optional in both documents; an empty map is left out, not written as `{}`.
fn insert_annotations(m: &mut Map<String, Value>, annotations: &BTreeMap<String, String>) {
    if annotations.is_empty() {
        return;
    }
    let a = annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    m.insert("annotations".into(), Value::Object(a));
}
