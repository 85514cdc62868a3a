//! Reads a Core Rule Set directory from disk for [`super::import`]: CRS 3.x (Debian's
//! `/usr/share/modsecurity-crs`, whose setup file lives in `/etc/modsecurity/crs/`) and CRS 4.x
//! release directories (`crs-setup.conf.example` beside `rules/`). Tooling only.

use std::path::{Path, PathBuf};

use super::import::{import, ImportError, Source};
use super::ruleset::{Report, Ruleset};

/// Where Debian keeps the setup file apart from the rules.
const DEBIAN_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

/// The rules directory and the setup file of a CRS directory.
pub fn locate(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), String> {
    let rules = if dir.join("rules").is_dir() {
        dir.join("rules")
    } else {
        dir.to_path_buf()
    };
    if !rules.is_dir() {
        return Err(format!("{} is not a directory", rules.display()));
    }
    let root = if rules == dir {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let candidates = [
        dir.join("crs-setup.conf"),
        root.join("crs-setup.conf"),
        dir.join("crs-setup.conf.example"),
        root.join("crs-setup.conf.example"),
        PathBuf::from(DEBIAN_SETUP),
    ];
    let setup = candidates.into_iter().find(|p| p.is_file());
    Ok((rules, setup))
}

/// Imports the `REQUEST-*.conf` files of a CRS directory, in name order.
pub fn import_dir(dir: &Path, paranoia: u8) -> Result<(Ruleset, Report), Vec<ImportError>> {
    let io = |file: &Path, e: String| {
        vec![ImportError {
            file: file.display().to_string(),
            line: 0,
            message: e,
        }]
    };
    let (rules, setup) = locate(dir).map_err(|e| io(dir, e))?;
    let mut names: Vec<String> = std::fs::read_dir(&rules)
        .map_err(|e| io(&rules, e.to_string()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("REQUEST-") && n.ends_with(".conf"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(io(&rules, "no REQUEST-*.conf files here".into()));
    }
    let mut texts = Vec::new();
    for n in &names {
        let path = rules.join(n);
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e.to_string()))?;
        texts.push((n.clone(), text));
    }
    let setup_text = match &setup {
        Some(p) => Some((
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| io(p, e.to_string()))?,
        )),
        None => None,
    };
    let files: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let data = |name: &str| -> Option<String> {
        if name.contains('/') || name.contains("..") {
            return None;
        }
        std::fs::read_to_string(rules.join(name)).ok()
    };
    import(
        setup_text
            .as_ref()
            .map(|(name, text)| Source { name, text }),
        &files,
        &data,
        paranoia,
    )
}

/// Replaces `detection.crs.ruleset: {"import": DIR}` in a policy document with the rule set
/// imported from DIR, at the paranoia level `detection.crs.paranoia` asks for (1 by default).
/// Returns whether it imported anything; an import that fails is every error, one per line.
pub fn resolve(doc: &mut serde_json::Value) -> Result<bool, String> {
    let Some(crs) = doc
        .get_mut("detection")
        .and_then(|d| d.get_mut("crs"))
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Ok(false);
    };
    let paranoia = crs
        .get("paranoia")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| (1..=4).contains(p))
        .unwrap_or(1);
    let Some(dir) = crs
        .get("ruleset")
        .and_then(|r| r.get("import"))
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
    else {
        return Ok(false);
    };
    let (set, _) = import_dir(&dir, paranoia).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let value = serde_json::to_value(&set).map_err(|e| e.to_string())?;
    crs.insert("ruleset".into(), value);
    Ok(true)
}

/// One request of `oracle/corpus.py`'s JSON lines, owned: what the oracle test, the examples
/// and the benchmarks feed the engine and ModSecurity alike.
#[derive(Clone, Debug)]
pub struct CorpusRequest {
    /// `id`.
    pub id: u64,
    /// `class` (`sqli`, `benign-retail`, ...).
    pub class: String,
    /// `method`.
    pub method: String,
    /// `uri`: path and query as sent.
    pub uri: String,
    /// `HTTP/` + `version`.
    pub protocol: String,
    /// Headers, names lower-cased (as Envoy hands them over).
    pub headers: Vec<(String, Vec<u8>)>,
    /// `body`, when not null.
    pub body: Option<Vec<u8>>,
}

impl CorpusRequest {
    /// Reads one corpus line; `None` for a line that is not one.
    pub fn parse(line: &str) -> Option<CorpusRequest> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let headers = v
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|h| {
                let pair = h.as_array()?;
                let name = pair.first()?.as_str()?.to_ascii_lowercase();
                let value = pair.get(1)?.as_str()?.as_bytes().to_vec();
                Some((name, value))
            })
            .collect();
        Some(CorpusRequest {
            id: v.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0),
            class: text("class").unwrap_or("").to_string(),
            method: text("method")?.to_string(),
            uri: text("uri")?.to_string(),
            protocol: format!("HTTP/{}", text("version").unwrap_or("1.1")),
            headers,
            body: text("body").map(|b| b.as_bytes().to_vec()),
        })
    }

    /// The request as the engine reads it, from `remote` (the oracle's is 127.0.0.1).
    pub fn input(&self, remote: Option<std::net::IpAddr>) -> super::Input<'_> {
        super::Input {
            method: &self.method,
            uri: &self.uri,
            protocol: &self.protocol,
            headers: &self.headers,
            body: self.body.as_deref(),
            remote_addr: remote,
        }
    }
}
