//! The `.wasm` as an OCI image, for Istio's `WasmPlugin` (`url: oci://…`), built without Docker
//! into an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) that
//! `oras cp --from-oci-layout`, `skopeo copy oci:…` or `crane push` can send to a registry.
//!
//! The image is the *compat* variant of the Wasm image format: one `tar+gzip` layer holding
//! `plugin.wasm`, as `docker build` of `FROM scratch` + `COPY plugin.wasm ./` makes it. Istio's
//! image fetcher accepts it (it looks for `plugin.wasm` in the last layer), and so does any tool
//! that handles ordinary images. The build is reproducible: fixed timestamps, owners and modes,
//! so the same `.wasm` always gives the same manifest digest, which is what a `WasmPlugin`'s
//! `sha256` is compared with.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Media types of the image.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The image index (`index.json`).
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The image configuration blob.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The layer: a gzip-compressed tar holding `plugin.wasm`.
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct Image {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag, as `org.opencontainers.image.ref.name` in `index.json`.
    pub tag: String,
    /// The manifest's digest, `sha256:<hex>`: what `WasmPlugin.spec.sha256` takes (hex part).
    pub manifest_digest: String,
    /// The layer's digest.
    pub layer_digest: String,
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("sha256:{hex}")
}

/// A one-file tar archive (POSIX ustar): `name` with `data`, mode 0644, owner 0, time 0.
fn tar_one(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    if name.len() > 99 {
        bail!("tar entry name too long: {name}");
    }
    fn put(header: &mut [u8; 512], at: usize, field: &[u8]) {
        if let Some(dst) = header.get_mut(at..at + field.len()) {
            dst.copy_from_slice(field);
        }
    }
    let mut header = [0u8; 512];
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", data.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 156, b"0");
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // The checksum is computed with its own field as spaces.
    put(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    // End of archive: two zero blocks.
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    // flate2 writes mtime 0 and no file name: the same input gives the same bytes.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// Writes a blob under `blobs/sha256/`.
fn put_blob(dir: &Path, bytes: &[u8]) -> Result<String> {
    let d = digest(bytes);
    let hex = d.trim_start_matches("sha256:");
    let path = dir.join("blobs/sha256").join(hex);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(d)
}

/// Builds the image layout for `wasm` in `dir` (replacing what was there), tagged `tag`.
pub fn build(wasm: &Path, dir: &Path, tag: &str) -> Result<Image> {
    let module = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    if !module.starts_with(b"\0asm") {
        bail!("{} is not a WebAssembly module", wasm.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;

    let tar = tar_one("plugin.wasm", &module)?;
    let layer = gzip(&tar)?;
    let layer_digest = put_blob(dir, &layer)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
    }))?;
    put_blob(dir, &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(CONFIG, &config),
        "layers": [descriptor(LAYER, &layer)],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": "tollgate",
            "org.opencontainers.image.description":
                "Tollgate proxy-wasm filter (wasm32-wasip1) for Envoy and Istio",
        },
    }))?;
    let manifest_digest = put_blob(dir, &manifest)?;
    let mut entry = descriptor(MANIFEST, &manifest);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(Image {
        dir: dir.to_path_buf(),
        tag: tag.into(),
        manifest_digest,
        layer_digest,
    })
}

/// What [`verify`] found in a layout: the tag's manifest digest and the module it carries.
#[derive(Debug)]
pub struct Verified {
    /// The manifest's digest.
    pub manifest_digest: String,
    /// `plugin.wasm` from the layer.
    pub module: Vec<u8>,
}

/// Reads a blob by descriptor and checks its digest and size.
fn blob(dir: &Path, desc: &Value) -> Result<Vec<u8>> {
    let d = desc["digest"]
        .as_str()
        .context("descriptor without digest")?;
    let hex = d
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("not a sha256 digest: {d}"))?;
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex))
        .with_context(|| format!("blob {d} is missing"))?;
    if digest(&bytes) != d {
        bail!("blob {d} does not hash to its name");
    }
    if desc["size"].as_u64() != Some(bytes.len() as u64) {
        bail!(
            "blob {d}: size {} but the descriptor says {}",
            bytes.len(),
            desc["size"]
        );
    }
    Ok(bytes)
}

/// Checks a layout as a registry client would: `oci-layout`, the index entry for `tag`, and every
/// descriptor's digest and size (manifest, config, layer); the config's `diff_ids` against the
/// uncompressed layer; and that the layer holds `plugin.wasm`, a WebAssembly module.
pub fn verify(dir: &Path, tag: &str) -> Result<Verified> {
    let layout: Value = serde_json::from_slice(&std::fs::read(dir.join("oci-layout"))?)?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        bail!("oci-layout: {layout}");
    }
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    if index["schemaVersion"] != 2 {
        bail!("index.json: schemaVersion {}", index["schemaVersion"]);
    }
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
        })
        .with_context(|| format!("index.json has no manifest tagged {tag}"))?;
    if entry["mediaType"] != MANIFEST {
        bail!("index entry media type {}", entry["mediaType"]);
    }
    let manifest_bytes = blob(dir, entry)?;
    let manifest: Value = serde_json::from_slice(&manifest_bytes)?;
    if manifest["schemaVersion"] != 2 || manifest["mediaType"] != MANIFEST {
        bail!("manifest: {manifest}");
    }
    if manifest["config"]["mediaType"] != CONFIG {
        bail!("config media type {}", manifest["config"]["mediaType"]);
    }
    let config: Value = serde_json::from_slice(&blob(dir, &manifest["config"])?)?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest without layers")?;
    let [layer] = layers.as_slice() else {
        bail!("expected one layer, found {}", layers.len());
    };
    if layer["mediaType"] != LAYER {
        bail!("layer media type {}", layer["mediaType"]);
    }
    let compressed = blob(dir, layer)?;
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut tar)
        .context("the layer is not gzip")?;
    if config["rootfs"]["diff_ids"] != json!([digest(&tar)]) {
        bail!("config diff_ids do not match the layer");
    }
    let module = read_tar_file(&tar, "plugin.wasm")?;
    if !module.starts_with(b"\0asm") {
        bail!("plugin.wasm is not a WebAssembly module");
    }
    Ok(Verified {
        manifest_digest: digest(&manifest_bytes),
        module,
    })
}

/// The contents of a regular file in a tar archive.
fn read_tar_file(tar: &[u8], wanted: &str) -> Result<Vec<u8>> {
    let mut at = 0;
    while let Some(header) = tar.get(at..at + 512) {
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let field = |from: usize, to: usize| {
            let f = header.get(from..to).unwrap_or_default();
            let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(f.get(..end).unwrap_or_default()).into_owned()
        };
        let name = field(0, 100);
        let size = usize::from_str_radix(field(124, 136).trim(), 8).context("tar size")?;
        let body = tar
            .get(at + 512..at + 512 + size)
            .context("truncated tar entry")?;
        if name.trim_start_matches("./") == wanted && matches!(field(156, 157).as_str(), "0" | "") {
            return Ok(body.to_vec());
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    bail!("the layer has no {wanted}")
}
