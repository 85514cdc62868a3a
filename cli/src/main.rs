//! `tollgate`: check, compare and test policies, and import a Core Rule Set.
//!
//! Exit status: 0 when everything checked passed, 1 when a policy is invalid or a case failed
//! (or a rule set could not be imported), 2 for a usage error or a file that cannot be read.
//! Errors (a policy's, usage, I/O) and reports of what was left out go to stderr; results go
//! to stdout, as text or, with `--format json`, as one JSON document (errors included).

mod diff;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use host_tests::cases::{self, WasmTarget};
use host_tests::Host;
use serde_json::{json, Value};
use tollgate_core::yamlpos::Positions;

/// What `--version` prints: the plugin's version (the workspace's, which the filter shares)
/// and the versions of the formats it reads.
fn version() -> &'static str {
    static V: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{v} (plugin {v}, policy format {}, CRS rule set format {})",
            tollgate_core::POLICY_FORMAT,
            tollgate_core::crs::ruleset::FORMAT,
            v = env!("CARGO_PKG_VERSION"),
        )
    });
    V.as_str()
}

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version = version(),
    about = "Check, compare and test Tollgate policies; import an OWASP Core Rule Set.",
    after_help = "Exit status: 0 ok; 1 an invalid policy, a failed case or a failed import; 2 a usage error or an unreadable file."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Lines for people.
    Text,
    /// One JSON document, for CI pipelines.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run case files against the compiled filter in the wasmtime host.
    Test {
        /// The filter to run (default: build or reuse target/wasm32-wasip1/release/tollgate_filter.wasm).
        #[arg(long, value_name = "FILE")]
        wasm: Option<PathBuf>,
        /// Case files or directories (default: policies/cases/).
        #[arg(value_name = "CASES")]
        cases: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Validate policy files, printing every error with its line and path.
    Check {
        #[arg(required = true, value_name = "POLICY")]
        policies: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// What pushing NEW over OLD changes: rules added, removed, loosened, tightened, and the
    /// limit state kept or reset.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of the policy format.
    Schema,
    /// The OWASP Core Rule Set.
    Crs {
        #[command(subcommand)]
        command: Crs,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum Crs {
    /// Import a CRS directory (3.x or 4.x) as the JSON a policy carries in
    /// detection.crs.ruleset; what was left out, and why, goes to stderr.
    Import {
        dir: PathBuf,
        /// The highest paranoia level to import.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
        paranoia: u8,
    },
}

fn main() -> ExitCode {
    // clap exits 0 for --help and --version and 2 for a usage error.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test {
            wasm,
            cases,
            format,
        } => test(wasm, cases, format),
        Command::Check { policies, format } => check(&policies, format),
        Command::Diff { old, new, format } => diff(&old, &new, format),
        Command::Schema => {
            print!("{}", tollgate_core::format::schema_json());
            Ok(true)
        }
        Command::Crs {
            command: Crs::Import { dir, paranoia },
        } => crs_import(&dir, paranoia),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "tollgate", &mut std::io::stdout());
            Ok(true)
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

fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Runs case files; true if every case passed.
fn test(wasm: Option<PathBuf>, inputs: Vec<PathBuf>, format: Format) -> Result<bool> {
    let inputs = if inputs.is_empty() {
        vec![harness::workspace_root().join("policies/cases")]
    } else {
        inputs
    };
    let mut files = Vec::new();
    for i in inputs {
        if i.is_dir() {
            files.extend(cases::files_in(&i)?);
        } else if i.is_file() {
            files.push(i);
        } else {
            anyhow::bail!("{}: no such file or directory", i.display());
        }
    }
    let wasm = match wasm {
        Some(w) => w,
        None => harness::wasm::ensure_wasm()?,
    };
    let host = Host::load(&wasm)?;
    let (mut total, mut failed) = (0, 0);
    let mut reports = Vec::new();
    for f in &files {
        let file = cases::load(f)?;
        let mut target = WasmTarget::start(&host, &file.edge)?;
        let results = cases::run(&file, &mut target);
        let shown = f.display().to_string();
        let (text, n) = cases::report(&shown, &results);
        if format == Format::Text {
            print!("{text}");
        }
        reports.push(json!({
            "file": shown,
            "edge": file.edge,
            "cases": results.iter().map(|r| json!({
                "name": r.name,
                "passed": r.problems.is_empty(),
                "problems": r.problems,
            })).collect::<Vec<_>>(),
        }));
        total += results.len();
        failed += n;
    }
    match format {
        Format::Text => println!(
            "\n{} cases, {} passed, {} failed ({})",
            total,
            total - failed,
            failed,
            wasm.display()
        ),
        Format::Json => print_json(&json!({
            "wasm": wasm.display().to_string(),
            "files": reports,
            "total": total,
            "passed": total - failed,
            "failed": failed,
        }))?,
    }
    Ok(failed == 0)
}

/// A policy file read and compiled, or every error it has.
enum Loaded {
    Valid(Value, Box<tollgate_core::Policy>),
    /// `(line, path, message)` per error; line 0 when the file is not YAML at all.
    Invalid(Vec<(u64, String, String)>),
}

/// Reads and compiles a policy file (YAML or JSON).
fn load(path: &Path) -> Result<Loaded> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
    let mut value: Value = match serde_saphyr::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Loaded::Invalid(vec![(
                0,
                String::new(),
                format!("not valid YAML: {e}"),
            )]))
        }
    };
    // `detection.crs.ruleset: {import: DIR}` names a Core Rule Set on this machine.
    if let Err(e) = tollgate_core::crs::dir::resolve(&mut value) {
        let line = Positions::parse(&text).map_or(1, |p| p.line("detection.crs.ruleset"));
        return Ok(Loaded::Invalid(vec![(
            line,
            "detection.crs.ruleset".into(),
            format!("the import failed: {e}"),
        )]));
    }
    match tollgate_core::Policy::from_json(&value.to_string()) {
        Ok(policy) => Ok(Loaded::Valid(value, Box::new(policy))),
        Err(errors) => {
            let pos = Positions::parse(&text);
            Ok(Loaded::Invalid(
                errors
                    .iter()
                    .map(|e| {
                        let line = pos.as_ref().map_or(1, |p| p.line(&e.path));
                        (line, e.path.clone(), e.message.clone())
                    })
                    .collect(),
            ))
        }
    }
}

/// Prints a file's errors to stderr as `file:line: path: message`.
fn print_errors(shown: &str, errors: &[(u64, String, String)]) {
    for (line, path, message) in errors {
        let at = if path.is_empty() { "(document)" } else { path };
        if *line == 0 {
            eprintln!("{shown}: {message}");
        } else {
            eprintln!("{shown}:{line}: {at}: {message}");
        }
    }
    eprintln!("{shown}: {} error(s)", errors.len());
}

fn errors_json(errors: &[(u64, String, String)]) -> Value {
    errors
        .iter()
        .map(|(line, path, message)| json!({"line": line, "path": path, "message": message}))
        .collect()
}

/// Checks policy files; true if all are valid.
fn check(paths: &[PathBuf], format: Format) -> Result<bool> {
    let mut ok = true;
    let mut files = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        match load(path)? {
            Loaded::Valid(_, policy) => {
                if format == Format::Text {
                    println!(
                        "{shown}: ok: policy {} for edge {}, {} routes, {} rules",
                        policy.version(),
                        policy.edge(),
                        policy.route_names().count(),
                        policy.rules().len()
                    );
                }
                files.push(json!({
                    "file": shown,
                    "valid": true,
                    "version": policy.version(),
                    "edge": policy.edge(),
                    "routes": policy.route_names().count(),
                    "rules": policy.rules().len(),
                    "errors": [],
                }));
            }
            Loaded::Invalid(errors) => {
                ok = false;
                if format == Format::Text {
                    print_errors(&shown, &errors);
                }
                files.push(json!({"file": shown, "valid": false, "errors": errors_json(&errors)}));
            }
        }
    }
    if format == Format::Json {
        print_json(&json!({"valid": ok, "files": files}))?;
    }
    Ok(ok)
}

/// Shows what pushing NEW over OLD changes; false if either is invalid.
fn diff(old: &Path, new: &Path, format: Format) -> Result<bool> {
    let (o, n) = (load(old)?, load(new)?);
    let (Loaded::Valid(old_doc, old_p), Loaded::Valid(new_doc, new_p)) = (&o, &n) else {
        let mut invalid = Vec::new();
        for (path, l) in [(old, &o), (new, &n)] {
            if let Loaded::Invalid(errors) = l {
                let shown = path.display().to_string();
                if format == Format::Text {
                    print_errors(&shown, errors);
                }
                invalid.push(json!({"file": shown, "errors": errors_json(errors)}));
            }
        }
        if format == Format::Json {
            print_json(&json!({"valid": false, "invalid": invalid}))?;
        }
        return Ok(false);
    };
    let d = diff::diff(old_doc, new_doc, old_p, new_p);
    match format {
        Format::Text => {
            println!(
                "{} ({}) → {} ({})",
                old.display(),
                old_p.version(),
                new.display(),
                new_p.version()
            );
            print!("{}", d.report());
        }
        Format::Json => print_json(&json!({
            "valid": true,
            "old": {"file": old.display().to_string(), "version": old_p.version()},
            "new": {"file": new.display().to_string(), "version": new_p.version()},
            "diff": d.to_json(),
        }))?,
    }
    Ok(true)
}

/// `tollgate crs import DIR [--paranoia N]`: the rule set on stdout, the report on stderr.
fn crs_import(dir: &Path, paranoia: u8) -> Result<bool> {
    match tollgate_core::crs::dir::import_dir(dir, paranoia) {
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
