//! A single-file image both `podman load` and `docker load` accept: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) with a Docker `manifest.json` beside it that
//! points at the same blobs. One set of blobs serves both readers.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde_json::{Map, Value};

use super::{
    ANNOTATION_REF_NAME, Descriptor, ImageError, Layout, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
    canonical_json, io_err,
};
use crate::layer::tar::{self as tarfmt, Member};

/// The annotation containerd (and so `docker load` of an OCI layout) takes the name from.
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Members of the archive carry this fixed mtime, like layer members do.
const ARCHIVE_MTIME: u64 = 0;

/// Writes the tarball for one platform's manifest, tagged `repo_tag` (`name:tag`), to `out`
/// through a temporary file and a rename.
pub fn write_archive(
    layout: &Layout,
    manifest: &Descriptor,
    repo_tag: &str,
    out: &Path,
) -> Result<(), ImageError> {
    if manifest.media_type != MEDIA_TYPE_MANIFEST {
        return Err(ImageError::NotAManifest {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
        });
    }
    let bytes = layout.read_blob(&manifest.digest)?;
    let bad = |source| ImageError::BadDocument {
        path: layout.blob_path(&manifest.digest).unwrap_or_default(),
        source,
    };
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| bad(Some(e)))?;
    let config = doc.get("config").and_then(Descriptor::from_value);
    let layers: Option<Vec<Descriptor>> = doc
        .get("layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Descriptor::from_value).collect())
        .and_then(|v: Option<Vec<_>>| v);
    let (Some(config), Some(layers)) = (config, layers) else {
        return Err(bad(None));
    };

    let index = archive_index(manifest, repo_tag);
    let docker = docker_manifest(&config, &layers, repo_tag)?;
    let mut blobs = BTreeSet::new();
    for d in [manifest, &config].into_iter().chain(&layers) {
        blobs.insert(d.hex()?.to_string());
    }

    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".archive-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let mut w = BufWriter::new(tmp.as_file());
    for folder in ["blobs", "blobs/sha256"] {
        tarfmt::write_header(&mut w, folder, Member::Dir, 0o755, ARCHIVE_MTIME)
            .map_err(io_err(out))?;
    }

    for hex in &blobs {
        copy_blob(&mut w, layout, hex)?;
    }
    for (name, data) in [
        ("index.json", index.as_slice()),
        ("manifest.json", docker.as_slice()),
        (
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
        ),
    ] {
        write_small(&mut w, name, data).map_err(io_err(out))?;
    }
    tarfmt::write_end(&mut w).map_err(io_err(out))?;
    w.into_inner().map_err(|e| io_err(out)(e.into_error()))?;

    tmp.as_file().sync_all().map_err(io_err(out))?;
    crate::fsutil::set_mode(tmp.path(), 0o644).map_err(io_err(out))?;
    tmp.persist(out).map_err(|e| io_err(out)(e.error))?;
    Ok(())
}

/// The archive's own `index.json`: just this manifest, named for both OCI and containerd.
fn archive_index(manifest: &Descriptor, repo_tag: &str) -> Vec<u8> {
    let mut entry = manifest.to_value();
    if let Value::Object(m) = &mut entry {
        let mut a = Map::new();
        a.insert(ANNOTATION_REF_NAME.into(), repo_tag.into());
        a.insert(ANNOTATION_CONTAINERD_NAME.into(), repo_tag.into());
        m.insert("annotations".into(), Value::Object(a));
    }
    let mut m = Map::new();
    m.insert("schemaVersion".into(), 2.into());
    m.insert("mediaType".into(), MEDIA_TYPE_INDEX.into());
    m.insert("manifests".into(), Value::Array(vec![entry]));
    canonical_json(&Value::Object(m))
}

/// Docker's `manifest.json` (the `docker save` format), naming blobs by their layout path.
fn docker_manifest(
    config: &Descriptor,
    layers: &[Descriptor],
    repo_tag: &str,
) -> Result<Vec<u8>, ImageError> {
    let blob = |d: &Descriptor| -> Result<Value, ImageError> {
        Ok(Value::String(format!("blobs/sha256/{}", d.hex()?)))
    };
    let mut m = Map::new();
    m.insert("Config".into(), blob(config)?);
    m.insert("RepoTags".into(), Value::Array(vec![repo_tag.into()]));
    let layers = layers.iter().map(blob).collect::<Result<Vec<_>, _>>()?;
    m.insert("Layers".into(), Value::Array(layers));
    Ok(canonical_json(&Value::Array(vec![Value::Object(m)])))
}

/// Streams one blob into the archive, checking it still has the size it had when written.
fn copy_blob(w: &mut impl Write, layout: &Layout, hex: &str) -> Result<(), ImageError> {
    let path = layout.blobs_dir().join(hex);
    let mut file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ImageError::MissingBlob {
            digest: format!("sha256:{hex}"),
            dir: layout.dir().to_path_buf(),
        },
        _ => io_err(&path)(e),
    })?;
    let size = file.metadata().map_err(io_err(&path))?.len();
    let name = format!("blobs/sha256/{hex}");
    tarfmt::write_header(w, &name, Member::File { size }, 0o644, ARCHIVE_MTIME)
        .map_err(io_err(&path))?;
    let copied = std::io::copy(&mut (&mut file).take(size), w).map_err(io_err(&path))?;
    if copied != size {
        return Err(ImageError::BlobMismatch {
            path,
            expected: format!("{size} bytes"),
            actual: format!("{copied} bytes"),
        });
    }
    tarfmt::write_padding(w, size).map_err(io_err(&path))
}

fn write_small(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<()> {
    let size = data.len() as u64;
    tarfmt::write_header(w, name, Member::File { size }, 0o644, ARCHIVE_MTIME)?;
    w.write_all(data)?;
    tarfmt::write_padding(w, size)
}
