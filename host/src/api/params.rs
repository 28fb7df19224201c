//! Query parameters of the /v1 read routes, checked by hand so that every
//! mistake (an unknown name, a value of the wrong kind) answers 400 with a
//! JSON body saying what is accepted.

use std::collections::HashMap;
use std::time::Duration;

use super::error::{ApiError, ApiResult};
use crate::store::now_ms;

/// A route's query, its names checked against what it takes.
pub struct Params {
    q: HashMap<String, String>,
    route: &'static str,
}

impl Params {
    pub fn new(
        q: HashMap<String, String>,
        route: &'static str,
        allowed: &[&str],
    ) -> ApiResult<Self> {
        if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {k:?}; {route} takes {}",
                allowed.join(", ")
            )));
        }
        Ok(Self { q, route })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.q
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A time: ms since the Unix epoch.
    pub fn ms(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.str(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "{key}={v:?} is not a time; give milliseconds since the Unix epoch, e.g. {key}={}",
                    now_ms()
                ))
            }),
        }
    }

    /// A whole number in `1..=max`, else `default`.
    pub fn count(&self, key: &str, default: i64, max: i64) -> ApiResult<i64> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "{key}={v:?} must be a whole number from 1 to {max}"
                ))),
            },
        }
    }

    /// A sequence number (or any integer).
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.str(key) {
            None => Ok(None),
            Some(v) => {
                v.trim().parse::<i64>().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("{key}={v:?} must be a whole number"))
                })
            }
        }
    }

    pub fn bool(&self, key: &str) -> ApiResult<bool> {
        match self.str(key) {
            None => Ok(false),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "{key}={v:?} must be true or false"
            ))),
        }
    }

    /// A duration such as `90s`, `15m`, `1h`, at most `max`.
    pub fn duration(&self, key: &str, default: Duration, max: Duration) -> ApiResult<Duration> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => match humantime::parse_duration(v.trim()) {
                Ok(d) if !d.is_zero() && d <= max => Ok(d),
                _ => Err(ApiError::bad_request(format!(
                    "{key}={v:?} on {} must be a duration such as 5m, 1h or 24h, at most {}",
                    self.route,
                    humantime::format_duration(max)
                ))),
            },
        }
    }
}
