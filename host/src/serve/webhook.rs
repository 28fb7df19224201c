//! Webhooks: when a job with a `webhook` URL becomes final (the lifecycle's
//! "finished" event wakes this loop; the due delivery is in the job's row),
//! the same object
//! `/status` returns is POSTed to it. A non-2xx answer or a network error is
//! retried with exponential backoff up to the configured number of tries.
//! Delivery state lives in the job row, so a restart resumes pending ones.
//! Only addresses [`super::egress`] allows are contacted (checked on the
//! address connected to); a refused one is recorded on the job and never
//! retried. Redirects are not followed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::App;
use super::egress;
use crate::store::{JobRecord, now_ms};
use crate::wire::webhook_payload;

pub async fn run(app: App, shutdown: Arc<Notify>) {
    let client = match reqwest::Client::builder()
        .timeout(app.config.webhook_timeout)
        .user_agent(concat!("wasmpod/", env!("CARGO_PKG_VERSION")))
        // A redirect could point anywhere; a proxy would resolve the name
        // itself, out of the resolver's sight.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(app.egress.resolver())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks are disabled: building the HTTP client failed: {e}");
            return;
        }
    };
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let stop = shutdown.notified();
        let woken = app.webhook_wake.0.notified();
        tokio::pin!(stop, woken);
        stop.as_mut().enable();
        woken.as_mut().enable();
        match app.store.due_webhooks(now_ms(), 64).await {
            Ok(due) => {
                for job in due {
                    if !in_flight
                        .lock()
                        .expect("webhook lock")
                        .insert(job.id.clone())
                    {
                        continue;
                    }
                    let app = app.clone();
                    let client = client.clone();
                    let in_flight = Arc::clone(&in_flight);
                    tokio::spawn(async move {
                        deliver(&app, &client, &job).await;
                        in_flight.lock().expect("webhook lock").remove(&job.id);
                        app.webhook_wake.0.notify_one();
                    });
                }
            }
            Err(e) => tracing::warn!("reading due webhooks: {e}"),
        }
        let wait = match app.store.next_webhook_at().await {
            Ok(Some(t)) => Duration::from_millis((t - now_ms()).clamp(10, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn deliver(app: &App, client: &reqwest::Client, job: &JobRecord) {
    let Some(url) = job.webhook.as_deref() else {
        return;
    };
    let refused = |e: egress::Refused| async move {
        let error = e.to_string();
        tracing::warn!(job = %job.id, url, "webhook refused: {error}");
        if let Err(e) = app.store.webhook_refused(&job.id, &error).await {
            tracing::warn!(job = %job.id, "recording a refused webhook: {e}");
        }
    };
    // Literal addresses (and the URL's form) are checked here; names when
    // the client resolves them.
    if let Err(e) = app.egress.check_url(url) {
        return refused(e).await;
    }
    let body = webhook_payload(job);
    let result = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let error = match result {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) if resp.status().is_redirection() => Some(format!(
            "the receiver answered {} (redirects are not followed; give the final URL)",
            resp.status()
        )),
        Ok(resp) => Some(format!("the receiver answered {}", resp.status())),
        Err(e) => {
            if let Some(r) = egress::refusal(&e) {
                return refused(r).await;
            }
            Some(format!("sending failed: {e}"))
        }
    };
    let tries = job.webhook_attempts + 1;
    let (delivered, next_at) = match &error {
        None => (true, None),
        Some(_) if tries < i64::from(app.config.webhook_attempts) => {
            let backoff = app.config.webhook_backoff * 2u32.pow((tries - 1).min(16) as u32);
            (false, Some(now_ms() + backoff.as_millis() as i64))
        }
        Some(_) => (false, None),
    };
    if let Some(e) = &error {
        tracing::warn!(job = %job.id, url, tries, "webhook not delivered: {e}");
    }
    if let Err(e) = app
        .store
        .webhook_attempted(&job.id, delivered, next_at, error.as_deref())
        .await
    {
        tracing::warn!(job = %job.id, "recording a webhook attempt: {e}");
    }
}
