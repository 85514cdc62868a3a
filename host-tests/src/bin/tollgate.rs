//! `tollgate`: run policy cases locally, check policy files.
//!
//! ```text
//! tollgate test [--wasm FILE] [CASES...]   run case files (default: policies/cases/) against
//!                                          the compiled filter in the wasmtime host
//! tollgate check POLICY...                 validate policy files: every error, with its line
//! tollgate diff OLD NEW                    what pushing NEW over OLD changes
//! tollgate schema                          print the policy format's JSON Schema
//! tollgate crs import DIR [--paranoia N]   import a Core Rule Set directory as JSON
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use host_tests::cases::{self, WasmTarget};
use host_tests::yamlpos::Positions;
use host_tests::Host;

const USAGE: &str = "usage:
  tollgate test [--wasm FILE] [CASES...]   run case files (default: policies/cases/) in the wasmtime host
  tollgate check POLICY...                 validate policy files, printing every error with its line
  tollgate diff OLD NEW                    what pushing NEW over OLD changes: rules added, removed,
                                           loosened, tightened, and the limit state kept or reset
  tollgate schema                          print the JSON Schema of the policy format
  tollgate crs import DIR [--paranoia N]   import a Core Rule Set directory (CRS 3.x or 4.x) as the JSON
                                           a policy carries in detection.crs.ruleset; the report of
                                           what was left out, and why, goes to stderr";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(args.get(1..).unwrap_or_default()),
        Some("check") => check(args.get(1..).unwrap_or_default()),
        Some("diff") => diff(args.get(1..).unwrap_or_default()),
        Some("crs") => crs(args.get(1..).unwrap_or_default()),
        Some("schema") => {
            print!("{}", tollgate_core::format::schema_json());
            Ok(true)
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs case files; true if every case passed.
fn test(args: &[String]) -> Result<bool> {
    let mut wasm: Option<PathBuf> = None;
    let mut inputs: Vec<PathBuf> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--wasm" => wasm = Some(it.next().context("--wasm needs a file")?.into()),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => inputs.push(s.into()),
        }
    }
    if inputs.is_empty() {
        inputs.push(harness::workspace_root().join("policies/cases"));
    }
    let mut files = Vec::new();
    for i in inputs {
        if i.is_dir() {
            files.extend(cases::files_in(&i)?);
        } else {
            files.push(i);
        }
    }
    let wasm = match wasm {
        Some(w) => w,
        None => harness::wasm::ensure_wasm()?,
    };
    let host = Host::load(&wasm)?;
    let (mut total, mut failed) = (0, 0);
    for f in &files {
        let file = cases::load(f)?;
        let mut target = WasmTarget::start(&host, &file.edge)?;
        let results = cases::run(&file, &mut target);
        let (text, n) = cases::report(&f.display().to_string(), &results);
        print!("{text}");
        total += results.len();
        failed += n;
    }
    println!(
        "\n{} cases, {} passed, {} failed ({})",
        total,
        total - failed,
        failed,
        wasm.display()
    );
    Ok(failed == 0)
}

/// Checks policy files; true if all are valid.
fn check(args: &[String]) -> Result<bool> {
    if args.is_empty() {
        bail!("check needs at least one policy file\n{USAGE}");
    }
    let mut ok = true;
    for a in args {
        ok &= check_file(Path::new(a))?;
    }
    Ok(ok)
}

fn check_file(path: &Path) -> Result<bool> {
    let shown = path.display();
    Ok(match load(path)? {
        Some((_, policy)) => {
            println!(
                "{shown}: ok: policy {} for edge {}, {} routes, {} rules",
                policy.version(),
                policy.edge(),
                policy.route_names().count(),
                policy.rules().len()
            );
            true
        }
        None => false,
    })
}

/// Shows what pushing NEW over OLD changes; false if either is invalid.
fn diff(args: &[String]) -> Result<bool> {
    let [old, new] = args else {
        bail!("diff needs two policy files, OLD and NEW\n{USAGE}");
    };
    let (Some((old_doc, old_p)), Some((new_doc, new_p))) =
        (load(Path::new(old))?, load(Path::new(new))?)
    else {
        return Ok(false);
    };
    println!("{old} ({}) → {new} ({})", old_p.version(), new_p.version());
    print!(
        "{}",
        host_tests::diff::diff(&old_doc, &new_doc, &old_p, &new_p).report()
    );
    Ok(true)
}

/// Reads and compiles a policy file (YAML or JSON). On errors, prints each as
/// `file:line: path: message` and returns `None`.
fn load(path: &Path) -> Result<Option<(serde_json::Value, tollgate_core::Policy)>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
    let mut value: serde_json::Value = match serde_saphyr::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            println!("{shown}: not valid YAML: {e}");
            return Ok(None);
        }
    };
    // `detection.crs.ruleset: {import: DIR}` names a Core Rule Set on this machine.
    if let Err(e) = tollgate_core::crs::dir::resolve(&mut value) {
        println!("{shown}: detection.crs.ruleset: the import failed:\n{e}");
        return Ok(None);
    }
    match tollgate_core::Policy::from_json(&value.to_string()) {
        Ok(policy) => Ok(Some((value, policy))),
        Err(errors) => {
            let pos = Positions::parse(&text);
            for e in &errors {
                let line = pos.as_ref().map_or(1, |p| p.line(&e.path));
                let at = if e.path.is_empty() {
                    "(document)"
                } else {
                    &e.path
                };
                println!("{shown}:{line}: {at}: {}", e.message);
            }
            println!("{shown}: {} error(s)", errors.len());
            Ok(None)
        }
    }
}

/// `tollgate crs import DIR [--paranoia N]`: the rule set on stdout, the report on stderr.
fn crs(args: &[String]) -> Result<bool> {
    let mut dir: Option<PathBuf> = None;
    let mut paranoia = 1u8;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("import") => {}
        _ => bail!("expected `crs import DIR`\n{USAGE}"),
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--paranoia" => {
                let n = it.next().context("--paranoia needs a level")?;
                paranoia = n
                    .parse()
                    .ok()
                    .filter(|p| (1..=4).contains(p))
                    .with_context(|| format!("--paranoia takes 1 to 4, not {n}"))?;
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s if dir.is_none() => dir = Some(s.into()),
            s => bail!("one directory only (also got {s})"),
        }
    }
    let dir = dir.context("crs import needs a CRS directory")?;
    match tollgate_core::crs::dir::import_dir(&dir, paranoia) {
        Ok((set, report)) => {
            println!("{}", serde_json::to_string(&set)?);
            for s in &report.skipped {
                eprintln!("skipped {} ({}:{}): {}", s.id, s.file, s.line, s.reason);
            }
            eprintln!(
                "{:<50} {:>8} {:>8} {:>8}",
                "file", "imported", "above PL", "skipped"
            );
            for f in &report.files {
                eprintln!(
                    "{:<50} {:>8} {:>8} {:>8}",
                    f.file, f.imported, f.above_paranoia, f.skipped
                );
            }
            eprintln!(
                "{}: {} rules at paranoia level {paranoia}",
                set.source,
                report.files.iter().map(|f| f.imported).sum::<u32>()
            );
            Ok(true)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s); nothing imported", errors.len());
            Ok(false)
        }
    }
}
