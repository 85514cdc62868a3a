//! A rate-limit service over Envoy's RLS v3 protocol, counting in Redis.
//!
//! `ShouldRateLimit` takes a domain and descriptors; each descriptor's limit is its override (the
//! limit Tollgate sends when a policy states a `rate`) or the configured one ([`config`]); each
//! limited descriptor is counted in a fixed window in Redis (`INCRBY` and `EXPIRE … NX` in one
//! `MULTI`, so every replica's proxies share one exact count); the answer says OK or
//! OVER_LIMIT with the limit, the hits left and the time to the window's end. A descriptor with
//! no limit is OK and not counted. When Redis cannot answer in time (5 ms before the caller's
//! `grpc-timeout`, at most 100 ms), the call fails with `UNAVAILABLE`, and the proxy applies its
//! limit's `on_failure` on that answer rather than on its own timer.

pub mod config;
pub mod proto;
mod service;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use service::RateLimitServer;

use config::{Applied, Config, Limit, Unit};
use proto::{DescriptorStatus, RateLimitRequest, RateLimitResponse, OK, OVER_LIMIT};

/// Longest a decision waits for Redis (connecting or answering) before it fails.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// How long before the caller's deadline (`grpc-timeout`, which Envoy sends with its timeout)
/// the service gives up on Redis and answers `UNAVAILABLE`: the proxy then applies its
/// `on_failure` on an answer, before its own timer would.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The part of a caller's `grpc-timeout` the service may spend on Redis.
pub fn budget(caller: Option<Duration>) -> Duration {
    caller.map_or(REDIS_TIMEOUT, |t| {
        REDIS_TIMEOUT.min(t.saturating_sub(DEADLINE_MARGIN).max(t / 2))
    })
}

/// A `grpc-timeout` header's value (`20m`: 20 ms; units H, M, S, m, u, n).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    if n.is_empty() || n.len() > 8 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Most descriptors one request may carry.
pub const MAX_DESCRIPTORS: usize = 64;

/// The service's state: its configuration and its Redis connection.
#[derive(Debug)]
pub struct Limiter {
    config: Config,
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

/// Why a decision could not be made.
#[derive(Debug)]
pub enum Failure {
    /// The request is malformed (no domain, too many descriptors).
    Invalid(&'static str),
    /// Redis did not answer.
    Store(String),
}

impl Limiter {
    /// A limiter over Redis at `redis_url` (`redis://127.0.0.1:6379`); it connects on first use
    /// and reconnects by itself.
    pub fn new(config: Config, redis_url: &str) -> anyhow::Result<Arc<Limiter>> {
        Ok(Arc::new(Limiter {
            config,
            client: redis::Client::open(redis_url)?,
            conn: tokio::sync::Mutex::new(None),
        }))
    }

    /// Connects to Redis now, in the background (the first decision need not wait).
    pub fn warm(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.connect().await;
        });
    }

    /// The connection, made on first use. The connecting runs in a task of its own: a call that
    /// gives up waiting (the proxy's timeout cancels it) does not cancel the connecting, and the
    /// next call finds it done.
    async fn connection(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<redis::aio::ConnectionManager, Failure> {
        if let Some(c) = self.conn.lock().await.as_ref() {
            return Ok(c.clone());
        }
        let me = self.clone();
        let task = tokio::spawn(async move { me.connect().await });
        match tokio::time::timeout(budget, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Failure::Store("connecting to Redis failed".into())),
            Err(_) => Err(Failure::Store("connecting to Redis timed out".into())),
        }
    }

    async fn connect(&self) -> Result<redis::aio::ConnectionManager, Failure> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // Reconnecting retries once, soon: while Redis is down a call fails in milliseconds
        // (the proxy applies its on_failure) rather than waiting out a long backoff.
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(2))
            .set_max_delay(Duration::from_millis(10));
        let c = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| Failure::Store("connecting to Redis timed out".into()))?
        .map_err(|e| Failure::Store(format!("connecting to Redis: {e}")))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Decides one request, spending at most `budget` (see [`budget`]) on Redis.
    pub async fn decide(
        self: &Arc<Self>,
        req: &RateLimitRequest,
        budget: Duration,
    ) -> Result<RateLimitResponse, Failure> {
        if req.domain.is_empty() {
            return Err(Failure::Invalid("the domain is empty"));
        }
        if req.descriptors.is_empty() || req.descriptors.len() > MAX_DESCRIPTORS {
            return Err(Failure::Invalid("from 1 to 64 descriptors"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let request_hits = u64::from(req.hits_addend.max(1));
        // What applies to each descriptor, and the Redis key it counts under.
        let mut counted = Vec::new();
        for d in &req.descriptors {
            let applied = match &d.limit {
                Some(o) => Unit::from_number(o.unit)
                    .filter(|_| o.requests_per_unit > 0)
                    .map(|unit| Applied {
                        limit: Limit {
                            unit,
                            requests_per_unit: o.requests_per_unit,
                        },
                        shadow: false,
                    }),
                None => {
                    let entries: Vec<(&str, &str)> = d
                        .entries
                        .iter()
                        .map(|e| (e.key.as_str(), e.value.as_str()))
                        .collect();
                    self.config.lookup(&req.domain, &entries)
                }
            };
            counted.push(applied.map(|a| {
                let secs = a.limit.unit.seconds();
                let window = now.as_secs() / secs * secs;
                let hits = d.hits_addend.as_ref().map_or(request_hits, |h| h.value);
                (a, key(&req.domain, d, secs, window), hits, window + secs)
            }));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (a, k, hits, _) in counted.iter().flatten() {
            pipe.cmd("INCRBY").arg(k).arg(*hits);
            pipe.cmd("EXPIRE")
                .arg(k)
                .arg(a.limit.unit.seconds())
                .arg("NX")
                .ignore();
        }
        let counts: Vec<u64> = if counted.iter().any(Option::is_some) {
            let started = tokio::time::Instant::now();
            let mut conn = self.connection(budget).await?;
            let left = budget.saturating_sub(started.elapsed());
            tokio::time::timeout(left, pipe.query_async(&mut conn))
                .await
                .map_err(|_| Failure::Store("Redis did not answer in time".into()))?
                .map_err(|e| Failure::Store(format!("Redis: {e}")))?
        } else {
            Vec::new()
        };
        let mut counts = counts.into_iter();
        let mut overall = OK;
        let mut statuses = Vec::new();
        for c in &counted {
            let status = match c {
                None => DescriptorStatus {
                    code: OK,
                    ..DescriptorStatus::default()
                },
                Some((a, _, _, end)) => {
                    let count = counts.next().unwrap_or(u64::MAX);
                    let limit = u64::from(a.limit.requests_per_unit);
                    let over = count > limit && !a.shadow;
                    if over {
                        overall = OVER_LIMIT;
                    }
                    let left = Duration::from_secs(*end).saturating_sub(now);
                    DescriptorStatus {
                        code: if over { OVER_LIMIT } else { OK },
                        current_limit: Some(proto::RateLimit {
                            requests_per_unit: a.limit.requests_per_unit,
                            unit: a.limit.unit.number(),
                            name: String::new(),
                        }),
                        limit_remaining: u32::try_from(limit.saturating_sub(count))
                            .unwrap_or(u32::MAX),
                        duration_until_reset: Some(proto::Duration {
                            seconds: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                            nanos: i32::try_from(left.subsec_nanos()).unwrap_or(0),
                        }),
                    }
                }
            };
            statuses.push(status);
        }
        Ok(RateLimitResponse {
            overall_code: overall,
            statuses,
        })
    }
}

/// The Redis key of a descriptor's window: each part length-prefixed, so no value can be
/// written to collide with another descriptor's key.
fn key(domain: &str, d: &proto::RateLimitDescriptor, unit_secs: u64, window: u64) -> String {
    let mut k = format!("tgrl:{}:{domain}", domain.len());
    for e in &d.entries {
        k.push_str(&format!(
            "|{}:{}={}:{}",
            e.key.len(),
            e.key,
            e.value.len(),
            e.value
        ));
    }
    k.push_str(&format!("|{unit_secs}|{window}"));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_deadline_bounds_the_wait_for_redis() {
        assert_eq!(parse_grpc_timeout("20m"), Some(Duration::from_millis(20)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_grpc_timeout("1500u"),
            Some(Duration::from_micros(1500))
        );
        for bad in ["", "m", "20", "20x", "-1m", "123456789m"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        // 20 ms from the proxy: 15 ms for Redis, so the answer beats the proxy's timer.
        assert_eq!(
            budget(Some(Duration::from_millis(20))),
            Duration::from_millis(15)
        );
        assert_eq!(
            budget(Some(Duration::from_millis(6))),
            Duration::from_millis(3)
        );
        assert_eq!(budget(Some(Duration::from_secs(5))), REDIS_TIMEOUT);
        assert_eq!(budget(None), REDIS_TIMEOUT);
    }
}
