//! `GET /metrics`: Prometheus text exposition, formatted by hand. The
//! values are read at scrape time from what the host already keeps (the
//! store, the pools, the slices, the meter), so there is no second copy of
//! the state to keep in sync, and the format for this handful of families
//! is a few lines. It needs an admin key (it names every endpoint and
//! shows its load and billing) unless the host runs with
//! `--metrics-public`.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::FromRequestParts;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::auth::Caller;
use super::doc::Rejected;
use super::error::ApiResult;
use crate::serve::meter::{Histogram, LATENCY_BUCKETS};

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "fleet",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
        Rejected),
    security(("api_key" = [])))]
pub async fn metrics(State(state): State<ApiState>, request: Request) -> ApiResult<Response> {
    if !state.app.config.metrics_public {
        let (mut parts, _) = request.into_parts();
        Caller::from_request_parts(&mut parts, &state)
            .await?
            .require_admin()?;
    }
    let body = render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, endpoint: &str, h: &Histogram) {
    let e = esc(endpoint);
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{endpoint=\"{e}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "{name}_sum{{endpoint=\"{e}\"}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{endpoint=\"{e}\"}} {}", h.count);
}

async fn render(state: &ApiState) -> ApiResult<String> {
    let app = &state.app;
    let ctx = app.ctx();
    let mut out = String::new();

    // Worker seconds: what the store has plus what is not flushed yet, so
    // the counter never goes back.
    ctx.slices.accrue();
    let mut seconds: BTreeMap<(String, String), f64> = BTreeMap::new();
    for u in app.usage(None, 0, i64::MAX).await? {
        *seconds.entry((u.endpoint_id, u.slice_type)).or_default() += u.worker_seconds;
    }
    for (k, s) in ctx.meter.pending_seconds() {
        *seconds.entry(k).or_default() += s;
    }
    family(
        &mut out,
        "wasmpod_worker_seconds_total",
        "counter",
        "Worker time (while a worker holds a slice: the billing basis), per endpoint and slice type.",
    );
    for ((e, t), s) in &seconds {
        let _ = writeln!(
            out,
            "wasmpod_worker_seconds_total{{endpoint=\"{}\",slice_type=\"{}\"}} {s:.3}",
            esc(e),
            esc(t)
        );
    }

    let pools = app.pools.all();
    let mut depth = Vec::new();
    let mut delay = Vec::new();
    let mut jobs = Vec::new();
    for (id, _) in &pools {
        depth.push((id, app.queue_depth(id).await?));
        delay.push((id, app.queue_delay_ms(id).await?));
        jobs.push((id, app.job_counts(id).await?));
    }
    family(
        &mut out,
        "wasmpod_queue_depth",
        "gauge",
        "Jobs waiting in an endpoint's queue.",
    );
    for (id, n) in &depth {
        let _ = writeln!(out, "wasmpod_queue_depth{{endpoint=\"{}\"}} {n}", esc(id));
    }
    family(
        &mut out,
        "wasmpod_queue_delay_seconds",
        "gauge",
        "How long the oldest queued job of an endpoint has waited.",
    );
    for (id, ms) in &delay {
        let _ = writeln!(
            out,
            "wasmpod_queue_delay_seconds{{endpoint=\"{}\"}} {:.3}",
            esc(id),
            *ms as f64 / 1e3
        );
    }
    family(
        &mut out,
        "wasmpod_jobs",
        "gauge",
        "Retained jobs of an endpoint by status (as /health counts them).",
    );
    for (id, c) in &jobs {
        for (status, n) in [
            ("in_queue", c.in_queue),
            ("in_progress", c.in_progress),
            ("completed", c.completed),
            ("failed", c.failed),
        ] {
            let _ = writeln!(
                out,
                "wasmpod_jobs{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                esc(id)
            );
        }
    }
    family(
        &mut out,
        "wasmpod_workers",
        "gauge",
        "Workers of an endpoint by state.",
    );
    for (id, _) in &pools {
        let c = app.worker_counts(id);
        for (s, n) in [
            ("initializing", c.initializing),
            ("idle", c.idle),
            ("running", c.running),
            ("throttled", c.throttled),
            ("outdated", c.outdated),
            ("unhealthy", c.unhealthy),
            // Scaled to zero with FlashBoot state parked in an executor.
            ("snapshotted", c.snapshotted),
        ] {
            let _ = writeln!(
                out,
                "wasmpod_workers{{endpoint=\"{}\",state=\"{s}\"}} {n}",
                esc(id)
            );
        }
    }
    family(
        &mut out,
        "wasmpod_slices_in_use",
        "gauge",
        "Slices held by an endpoint's workers, by slice type.",
    );
    for (e, t, n) in ctx.slices.held_by_type() {
        let _ = writeln!(
            out,
            "wasmpod_slices_in_use{{endpoint=\"{}\",slice_type=\"{}\"}} {n}",
            esc(&e),
            esc(&t)
        );
    }

    let stats = ctx.meter.job_stats();
    family(
        &mut out,
        "wasmpod_jobs_finished_total",
        "counter",
        "Jobs its workers finished on this host since it started, by final status (cancels of queued jobs and ttl expiries are not counted).",
    );
    for (id, s) in &stats {
        for (status, n) in &s.finished {
            let _ = writeln!(
                out,
                "wasmpod_jobs_finished_total{{endpoint=\"{}\",status=\"{}\"}} {n}",
                esc(id),
                esc(status)
            );
        }
    }
    family(
        &mut out,
        "wasmpod_job_queue_delay_seconds",
        "histogram",
        "Time jobs waited in the queue before they started.",
    );
    for (id, s) in &stats {
        histogram(
            &mut out,
            "wasmpod_job_queue_delay_seconds",
            id,
            &s.queue_delay,
        );
    }
    family(
        &mut out,
        "wasmpod_job_execution_seconds",
        "histogram",
        "Time jobs ran, from start to their final status.",
    );
    for (id, s) in &stats {
        histogram(&mut out, "wasmpod_job_execution_seconds", id, &s.execution);
    }

    family(
        &mut out,
        "wasmpod_rate_limited_total",
        "counter",
        "Requests refused (429) past an endpoint's rate limit, by operation.",
    );
    for (e, op, n) in app.rate_limited_all() {
        let _ = writeln!(
            out,
            "wasmpod_rate_limited_total{{endpoint=\"{}\",operation=\"{op}\"}} {n}",
            esc(&e)
        );
    }
    family(
        &mut out,
        "wasmpod_lb_requests",
        "gauge",
        "Load-balancing endpoints' requests: in flight on a worker, and waiting for one.",
    );
    let lb: Vec<_> = pools
        .iter()
        .filter_map(|(id, _)| app.lb_counts(id).map(|c| (id, c)))
        .collect();
    for (id, c) in &lb {
        for (s, n) in [("in_flight", c.in_flight), ("waiting", c.waiting)] {
            let _ = writeln!(
                out,
                "wasmpod_lb_requests{{endpoint=\"{}\",state=\"{s}\"}} {n}",
                esc(id)
            );
        }
    }
    family(
        &mut out,
        "wasmpod_lb_requests_total",
        "counter",
        "Load-balancing endpoints' requests since the host started: served by a worker, failed (the runtime answered for the handler), rejected (503, no worker in time).",
    );
    for (id, c) in &lb {
        for (s, n) in [
            ("served", c.served),
            ("failed", c.failed),
            ("rejected", c.rejected),
        ] {
            let _ = writeln!(
                out,
                "wasmpod_lb_requests_total{{endpoint=\"{}\",outcome=\"{s}\"}} {n}",
                esc(id)
            );
        }
    }
    family(
        &mut out,
        "wasmpod_cold_start_seconds",
        "histogram",
        "Time from placing a worker on a slice to its instances being ready (executor start, load, init or FlashBoot restore).",
    );
    for (id, s) in &stats {
        histogram(&mut out, "wasmpod_cold_start_seconds", id, &s.cold_start);
    }
    family(
        &mut out,
        "wasmpod_cold_starts_total",
        "counter",
        "Workers started, by the FlashBoot layer that served the start (cold, code-cached, pre-initialised, vram-restored).",
    );
    for (id, s) in &stats {
        for (boot, n) in &s.cold_starts {
            let _ = writeln!(
                out,
                "wasmpod_cold_starts_total{{endpoint=\"{}\",boot=\"{}\"}} {n}",
                esc(id),
                esc(boot)
            );
        }
    }

    let view = ctx.slices.view();
    family(
        &mut out,
        "wasmpod_executor_restarts_total",
        "counter",
        "Executor processes restarted after they died, per slice.",
    );
    for x in &view.executors {
        let _ = writeln!(
            out,
            "wasmpod_executor_restarts_total{{slice=\"{}\"}} {}",
            esc(&x.slice),
            x.restarts
        );
    }
    family(
        &mut out,
        "wasmpod_executor_up",
        "gauge",
        "1 when the slice's executor process is alive.",
    );
    for x in &view.executors {
        let _ = writeln!(
            out,
            "wasmpod_executor_up{{slice=\"{}\"}} {}",
            esc(&x.slice),
            u8::from(x.alive)
        );
    }
    Ok(out)
}
