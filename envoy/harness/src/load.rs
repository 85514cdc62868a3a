//! Bounded load on loopback with `wrk` (Debian's package; `cargo xtask setup` installs it), and
//! what a process costs: CPU time and resident memory from `/proc`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A current desktop Chrome's User-Agent, for requests that look like a browser's.
pub const BROWSER_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Writes a wrk script into `dir` that sends what a browser sends to the catalogue (User-Agent,
/// Accept, a Referer, three cookies) from a new client address each time (198.18.0.0/15, the
/// benchmarking range, in `X-Forwarded-For`), so a per-address limit checks a new key on every
/// request and never refuses. Returns the script's path.
pub fn browser_script(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("browse.lua");
    std::fs::write(
        &path,
        format!(
            r#"local n = 0
request = function()
  n = n + 1
  local ip = string.format("198.18.%d.%d", math.floor(n / 250) % 250, n % 250 + 1)
  return wrk.format(nil, nil, {{
    ["X-Forwarded-For"] = ip,
    ["User-Agent"] = "{BROWSER_UA}",
    ["Accept"] = "application/json",
    ["Referer"] = "https://shop.example.com/configurator/e-sport?trim=gt&colour=red",
    ["Cookie"] = "consent=yes; session=9f8e7d6c5b4a; last_model=e-sport",
  }})
end
"#
        ),
    )?;
    Ok(path)
}

/// What one `wrk` run reported.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors, added up.
    pub socket_errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
}

/// One load run.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    /// Path and query.
    pub path: &'a str,
    /// Extra headers.
    pub headers: Vec<(&'a str, String)>,
    /// wrk threads.
    pub threads: u32,
    /// Open connections.
    pub connections: u32,
    /// How long.
    pub duration: Duration,
    /// A Lua script for wrk (`-s`), e.g. to vary a header per request.
    pub script: Option<&'a Path>,
}

/// Runs `wrk` against `addr` (127.0.0.1 only) and parses its summary.
pub fn wrk(addr: SocketAddr, load: &Load<'_>) -> Result<WrkResult> {
    if !addr.ip().is_loopback() {
        bail!("load runs on loopback only, not {addr}");
    }
    let mut cmd = Command::new("wrk");
    cmd.arg("--latency")
        .args(["-t", &load.threads.to_string()])
        .args(["-c", &load.connections.to_string()])
        .args(["-d", &format!("{}s", load.duration.as_secs().max(1))])
        .args(["--timeout", "5s"]);
    for (k, v) in &load.headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    if let Some(s) = load.script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(format!("http://{addr}{}", load.path));
    let out = cmd
        .output()
        .context("running wrk (install it with `cargo xtask setup`, or apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", ..] => r.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().unwrap_or(0),
            ["Requests/sec:", n] => r.rps = n.parse().unwrap_or(0.0),
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["50%", v] => r.p50_us = micros(v),
            ["99%", v] => r.p99_us = micros(v),
            _ => {}
        }
    }
    if r.requests == 0 {
        bail!("wrk completed no request:\n{text}");
    }
    Ok(r)
}

fn micros(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => n,
    }
}

/// A process's CPU time (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// A process's resident set size, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_wrk_output() {
        let text = "Running 2s test @ http://127.0.0.1:1/x\n  2 threads and 8 connections\n  Latency Distribution\n     50%  310.00us\n     75%  400.00us\n     90%    1.20ms\n     99%    2.50ms\n  9000 requests in 2.00s, 1.00MB read\n  Socket errors: connect 1, read 2, write 0, timeout 4\n  Non-2xx or 3xx responses: 120\nRequests/sec:   4500.50\n";
        let r = super::parse(text).unwrap();
        assert_eq!(r.requests, 9000);
        assert_eq!(r.non_2xx, 120);
        assert_eq!(r.socket_errors, 7);
        assert_eq!(r.rps, 4500.5);
        assert_eq!(r.p50_us, 310.0);
        assert_eq!(r.p99_us, 2500.0);
    }
}

/// One configuration's medians in a side-by-side run.
#[derive(Clone, Debug)]
pub struct SideBySide {
    /// The configuration's name.
    pub name: String,
    /// Median requests per second.
    pub rps: f64,
    /// Median Envoy CPU time per request, microseconds.
    pub cpu_us: f64,
    /// Median p99 latency, microseconds.
    pub p99_us: f64,
    /// Largest minus smallest rps over the rounds.
    pub spread: f64,
}

/// Something to load: where to send requests, and the process whose CPU time to count (`None`
/// for a target whose CPU is not of interest, such as the backend measured directly).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Its name in the report.
    pub name: &'a str,
    /// Where `wrk` sends requests (127.0.0.1).
    pub addr: SocketAddr,
    /// The process to measure.
    pub pid: Option<u32>,
}

/// One target's medians over the rounds.
#[derive(Clone, Debug)]
pub struct Row {
    /// The target's name.
    pub name: String,
    /// Median requests per second.
    pub rps: f64,
    /// Median p50 latency, microseconds.
    pub p50_us: f64,
    /// Median p99 latency, microseconds.
    pub p99_us: f64,
    /// Median CPU time of the target's process per request, microseconds (NaN without a pid).
    pub cpu_us: f64,
    /// Lowest and highest rps over the rounds.
    pub rps_range: (f64, f64),
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Loads each target in turn, `rounds` times, reversing the order every other round, and
/// reports medians: the way to compare configurations on one busy machine. Every answer must be
/// 2xx or 3xx, and no socket may fail.
pub fn rounds(targets: &[Target<'_>], load: &Load<'_>, rounds: usize) -> Result<Vec<Row>> {
    // Per target: rps, p50, p99, cpu per request.
    let mut samples: Vec<[Vec<f64>; 4]> = vec![Default::default(); targets.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let Some(t) = targets.get(i) else {
                continue;
            };
            let cpu0 = t.pid.map(cpu_seconds).transpose()?;
            let r = wrk(t.addr, load)?;
            let cpu = match (t.pid, cpu0) {
                (Some(pid), Some(c0)) => (cpu_seconds(pid)? - c0) * 1e6 / r.requests as f64,
                _ => f64::NAN,
            };
            if r.non_2xx > 0 || r.socket_errors > 0 {
                bail!(
                    "{}: {} refusals and {} socket errors; the comparison needs answered requests",
                    t.name,
                    r.non_2xx,
                    r.socket_errors
                );
            }
            if let Some(s) = samples.get_mut(i) {
                for (v, x) in s.iter_mut().zip([r.rps, r.p50_us, r.p99_us, cpu]) {
                    v.push(x);
                }
            }
        }
    }
    Ok(targets
        .iter()
        .zip(samples)
        .map(|(t, [mut rps, mut p50, mut p99, mut cpu])| Row {
            name: t.name.to_owned(),
            rps_range: (
                rps.iter().copied().fold(f64::MAX, f64::min),
                rps.iter().copied().fold(f64::MIN, f64::max),
            ),
            rps: median(&mut rps),
            p50_us: median(&mut p50),
            p99_us: median(&mut p99),
            cpu_us: median(&mut cpu),
        })
        .collect())
}

/// Loads each Envoy in turn, `rounds` times, alternating the order, and reports medians (see
/// [`rounds`]).
pub fn side_by_side(
    envoys: &[(&str, &crate::envoy::Envoy)],
    load: &Load<'_>,
    rounds_n: usize,
) -> Result<Vec<SideBySide>> {
    let targets: Vec<Target<'_>> = envoys
        .iter()
        .map(|(name, e)| Target {
            name,
            addr: e.addr,
            pid: Some(e.pid()),
        })
        .collect();
    Ok(rounds(&targets, load, rounds_n)?
        .into_iter()
        .map(|r| SideBySide {
            name: r.name,
            rps: r.rps,
            cpu_us: r.cpu_us,
            p99_us: r.p99_us,
            spread: r.rps_range.1 - r.rps_range.0,
        })
        .collect())
}

/// Prints a two-row comparison from [`side_by_side`]: each row, then the first against the second
/// (rps ratio, Envoy CPU and p99 added). `without` names what the second lacks.
pub fn print_comparison(title: &str, rows: &[SideBySide], without: &str) {
    println!("{title}; medians:");
    for r in rows {
        println!(
            "  {:<16} {:>8.0} rps (spread {:.0})  {:>6.1} µs Envoy CPU/request  p99 {:.0} µs",
            r.name, r.rps, r.spread, r.cpu_us, r.p99_us
        );
    }
    if let [w, wo] = rows {
        println!(
            "  ratio: {:.3} of the rps without {without}; +{:.1} µs CPU per request; p99 {:+.0} µs",
            w.rps / wo.rps,
            w.cpu_us - wo.cpu_us,
            w.p99_us - wo.p99_us
        );
    }
}
