//! The queue's rules (and the log table's), tested against a store
//! directly through its interfaces ([`JobStore`], [`EndpointStore`],
//! [`HandlerStore`], [`LogStore`]). Every
//! backend runs the same suite: one `store_suite!` line each (a Postgres
//! backend adds `store_suite!(postgres, ...)`).

use super::*;

const H1: &str = "h1";
const H2: &str = "h2";

fn endpoint(id: &str, max_retries: u32) -> EndpointRecord {
    EndpointRecord {
        id: id.to_string(),
        name: id.to_string(),
        handler: H1.to_string(),
        config: EndpointConfig {
            max_retries,
            ..Default::default()
        },
        generation: 1,
        created_at: 0,
        updated_at: 0,
    }
}

fn job(id: &str, endpoint: &str) -> NewJob {
    NewJob {
        id: id.to_string(),
        endpoint_id: endpoint.to_string(),
        input: format!("{{\"job\":\"{id}\"}}"),
        webhook: None,
        execution_timeout_ms: None,
        ttl_ms: 60_000,
        low_priority: false,
        sync: false,
        accepted_at: None,
        handed_at: None,
    }
}

fn by(worker: &str, host: &str) -> ClaimBy {
    ClaimBy {
        worker_id: worker.to_string(),
        host_id: host.to_string(),
        handler: H1.to_string(),
    }
}

fn done(id: &str, worker: &str, status: JobStatus) -> Finish {
    Finish {
        id: id.to_string(),
        worker_id: worker.to_string(),
        outcome: JobOutcome {
            status,
            output: (status == JobStatus::Completed).then(|| "{\"ok\":true}".to_string()),
            error: (status == JobStatus::Failed).then(|| "boom".to_string()),
        },
        retention_ms: 1000,
    }
}

/// A store with handlers h1, h2 and endpoints "e" (max_retries 1) and "f".
async fn seeded<S: JobStore + EndpointStore + HandlerStore>(s: &S) {
    s.put_handler(H1, 1, "handler").await.unwrap();
    s.put_handler(H2, 1, "handler").await.unwrap();
    s.create_endpoint(&endpoint("e", 1)).await.unwrap();
    s.create_endpoint(&endpoint("f", 0)).await.unwrap();
}

async fn accept<S: JobStore>(s: &S, jobs: &[NewJob], now: i64) {
    let batch: Vec<Accept<'_>> = jobs.iter().map(|job| Accept { job, claim: None }).collect();
    s.accept(&batch, now).await.unwrap();
}

async fn status<S: JobStore>(s: &S, endpoint: &str, id: &str) -> Option<JobStatus> {
    s.get_job(endpoint, id).await.unwrap().map(|r| r.status)
}

pub async fn claims_take_normal_priority_first_in_order<
    S: JobStore + EndpointStore + HandlerStore,
>(
    s: S,
) {
    seeded(&s).await;
    let mut low = job("low", "e");
    low.low_priority = true;
    accept(
        &s,
        &[low, job("a", "e"), job("b", "e"), job("c", "e")],
        1000,
    )
    .await;
    accept(&s, &[job("other", "f")], 1000).await;
    let got = s.claim("e", &by("w1", "host"), 2, 1010).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(got[0].input, "{\"job\":\"a\"}");
    assert_eq!(got[0].attempt, 0);
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::InProgress);
    assert_eq!(rec.worker_id.as_deref(), Some("w1"));
    assert_eq!(rec.delay_ms, Some(10));
    let rest = s.claim("e", &by("w2", "host"), 10, 1020).await.unwrap();
    let ids: Vec<&str> = rest.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["c", "low"], "low priority after every normal one");
    assert!(
        s.claim("e", &by("w2", "host"), 10, 1020)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.queue_depth("f", 1020).await.unwrap(), 1);
}

pub async fn claims_only_for_the_current_handler<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    accept(&s, &[job("a", "e")], 0).await;
    let mut old = by("w-old", "host");
    old.handler = H2.to_string();
    assert!(s.claim("e", &old, 1, 1).await.unwrap().is_empty());
    assert_eq!(s.claim("e", &by("w", "host"), 1, 1).await.unwrap().len(), 1);
}

pub async fn accept_can_hand_a_job_to_a_worker<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    let (a, b) = (job("a", "e"), job("b", "e"));
    let w = by("w", "host");
    s.accept(
        &[
            Accept {
                job: &a,
                claim: Some(&w),
            },
            Accept {
                job: &b,
                claim: None,
            },
        ],
        5,
    )
    .await
    .unwrap();
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::InProgress);
    assert_eq!(rec.worker_id.as_deref(), Some("w"));
    assert_eq!(rec.delay_ms, Some(0));
    assert_eq!(status(&s, "e", "b").await, Some(JobStatus::InQueue));
    // Given back untouched: queued again, no retry counted.
    assert!(s.unclaim("a", "w").await.unwrap());
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.retries), (JobStatus::InQueue, 0));
    // A duplicate id fails the whole batch.
    let dup = job("b", "e");
    let c = job("c", "e");
    assert!(
        s.accept(
            &[
                Accept {
                    job: &c,
                    claim: None
                },
                Accept {
                    job: &dup,
                    claim: None
                }
            ],
            6
        )
        .await
        .is_err()
    );
    assert_eq!(status(&s, "e", "c").await, None, "all or nothing");
}

pub async fn finish_needs_the_claiming_worker<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    accept(&s, &[job("a", "e"), job("b", "e"), job("c", "e")], 0).await;
    s.claim("e", &by("w", "host"), 3, 10).await.unwrap();
    let finished = s
        .finish(
            &[
                done("a", "w", JobStatus::Completed),
                done("b", "w", JobStatus::Failed),
                done("c", "someone-else", JobStatus::Completed),
            ],
            30,
        )
        .await
        .unwrap();
    let mut ids: Vec<&str> = finished.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let a = finished.iter().find(|j| j.id == "a").unwrap();
    assert_eq!(a.status, JobStatus::Completed);
    assert_eq!(a.output.as_deref(), Some("{\"ok\":true}"));
    assert_eq!(a.execution_ms, Some(20));
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!(rec.expires_at, Some(30 + 1000), "kept for its retention");
    assert_eq!(status(&s, "e", "c").await, Some(JobStatus::InProgress));
    // Finished twice: the second is a no-op.
    assert!(
        s.finish(&[done("a", "w", JobStatus::Failed)], 40)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job handed to a worker at accept, or after waiting for one, may be
/// written only at its end: its accept (as of when it was accepted), its
/// start (as of its hand-off) and its finish in one commit.
pub async fn a_job_is_accepted_and_finished_in_one_commit_as_of_its_accept<
    S: JobStore + EndpointStore + HandlerStore,
>(
    s: S,
) {
    seeded(&s).await;
    let w = by("w", "host");
    let mut a = job("a", "e");
    a.sync = true;
    a.accepted_at = Some(100);
    let batch = Batch {
        accepts: vec![(a, Some(w.clone()))],
        finishes: vec![done("a", "w", JobStatus::Completed)],
        ..Batch::default()
    };
    let o = s.commit(batch, 160).await.unwrap();
    o.accepted.unwrap();
    let finished = o.finished.unwrap();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0].status, JobStatus::Completed);
    assert_eq!(finished[0].output.as_deref(), Some("{\"ok\":true}"));
    assert_eq!(finished[0].execution_ms, Some(60), "timed from its accept");
    assert_eq!(finished[0].delay_ms, Some(0));
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Completed);
    assert_eq!(rec.worker_id.as_deref(), Some("w"));
    assert_eq!((rec.created_at, rec.started_at), (100, Some(100)));
    assert_eq!(rec.expires_at, Some(160 + 1000), "kept for its retention");
    // Written later while it still runs: IN_PROGRESS as of its accept.
    let mut b = job("b", "e");
    b.accepted_at = Some(200);
    let o = s
        .commit(
            Batch {
                accepts: vec![(b, Some(w))],
                ..Batch::default()
            },
            300,
        )
        .await
        .unwrap();
    o.accepted.unwrap();
    let rec = s.get_job("e", "b").await.unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::InProgress);
    assert_eq!((rec.created_at, rec.started_at), (200, Some(200)));
    // One that waited for its worker: started, and delayed, as of when it
    // was handed over.
    let mut c = job("c", "e");
    c.sync = true;
    c.accepted_at = Some(400);
    c.handed_at = Some(430);
    let o = s
        .commit(
            Batch {
                accepts: vec![(c, Some(by("w", "host")))],
                finishes: vec![done("c", "w", JobStatus::Completed)],
                ..Batch::default()
            },
            450,
        )
        .await
        .unwrap();
    o.accepted.unwrap();
    let finished = o.finished.unwrap();
    assert_eq!(finished[0].delay_ms, Some(30), "{finished:?}");
    assert_eq!(finished[0].execution_ms, Some(20), "{finished:?}");
    let rec = s.get_job("e", "c").await.unwrap().unwrap();
    assert_eq!(
        (rec.created_at, rec.started_at, rec.completed_at),
        (400, Some(430), Some(450))
    );
}

pub async fn lost_jobs_are_requeued_until_retries_are_spent<
    S: JobStore + EndpointStore + HandlerStore,
>(
    s: S,
) {
    seeded(&s).await;
    accept(&s, &[job("a", "e")], 0).await;
    s.claim("e", &by("w1", "host"), 1, 1).await.unwrap();
    assert!(matches!(
        s.requeue_lost("a", "not-me", "gone", 2, 1000)
            .await
            .unwrap(),
        LostJobOutcome::NotHeld
    ));
    assert!(matches!(
        s.requeue_lost("a", "w1", "gone", 2, 1000).await.unwrap(),
        LostJobOutcome::Requeued
    ));
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.retries), (JobStatus::InQueue, 1));
    let again = s.claim("e", &by("w2", "host"), 1, 3).await.unwrap();
    assert_eq!(again[0].attempt, 1, "the attempt keys its stream chunks");
    match s.requeue_lost("a", "w2", "gone", 4, 1000).await.unwrap() {
        LostJobOutcome::Failed(job) => {
            assert_eq!(job.status, JobStatus::Failed);
            assert!(job.error.unwrap().contains("max_retries"));
        }
        other => panic!("retries spent, yet {other:?}"),
    }
}

pub async fn orphans_of_another_host_are_recovered<S: JobStore + EndpointStore + HandlerStore>(
    s: S,
) {
    seeded(&s).await;
    accept(
        &s,
        &[
            job("a", "e"),
            job("b", "f"),
            job("mine", "e"),
            job("q", "e"),
        ],
        0,
    )
    .await;
    s.claim("e", &by("w", "dead-host"), 1, 1).await.unwrap(); // a
    s.claim("f", &by("w", "dead-host"), 1, 1).await.unwrap(); // b, max_retries 0
    s.claim("e", &by("w", "me"), 1, 1).await.unwrap(); // mine
    let (requeued, failed) = s.recover_orphans("me", 5, 1000).await.unwrap();
    assert_eq!(requeued, ["a"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "b");
    assert_eq!(status(&s, "e", "mine").await, Some(JobStatus::InProgress));
    assert_eq!(status(&s, "e", "q").await, Some(JobStatus::InQueue));
    assert_eq!(s.get_job("e", "a").await.unwrap().unwrap().retries, 1);
}

pub async fn cancel_queued_running_and_final<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    accept(&s, &[job("run", "e"), job("q", "e")], 0).await;
    s.claim("e", &by("w", "host"), 1, 1).await.unwrap();
    match s.cancel("e", "q", 2, 1000).await.unwrap() {
        CancelOutcome::Cancelled { was_running, job } => {
            assert!(!was_running);
            assert_eq!(job.status, JobStatus::Cancelled);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.cancel("e", "run", 3, 1000).await.unwrap(),
        CancelOutcome::Cancelled {
            was_running: true,
            ..
        }
    ));
    // The worker's late result does not overwrite the cancel.
    assert!(
        s.finish(&[done("run", "w", JobStatus::Completed)], 4)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.cancel("e", "run", 5, 1000).await.unwrap(),
        CancelOutcome::AlreadyFinal(JobStatus::Cancelled)
    ));
    assert!(matches!(
        s.cancel("f", "run", 5, 1000).await.unwrap(),
        CancelOutcome::NotFound
    ));
}

pub async fn retry_only_failed_or_timed_out<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    accept(&s, &[job("ok", "e"), job("bad", "e")], 0).await;
    s.claim("e", &by("w", "host"), 2, 1).await.unwrap();
    s.finish(
        &[
            done("ok", "w", JobStatus::Completed),
            done("bad", "w", JobStatus::Failed),
        ],
        2,
    )
    .await
    .unwrap();
    assert!(matches!(
        s.retry("e", "ok", 3).await.unwrap(),
        RetryOutcome::NotRetryable(JobStatus::Completed)
    ));
    assert!(matches!(
        s.retry("e", "bad", 3).await.unwrap(),
        RetryOutcome::Requeued
    ));
    let rec = s.get_job("e", "bad").await.unwrap().unwrap();
    assert_eq!((rec.status, rec.retries), (JobStatus::InQueue, 1));
    assert_eq!(rec.error, None);
    assert!(matches!(
        s.retry("e", "nope", 3).await.unwrap(),
        RetryOutcome::NotFound
    ));
}

pub async fn ttl_expires_queued_jobs_only<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    let mut short = job("short", "e");
    short.ttl_ms = 100;
    let mut running = job("running", "e");
    running.ttl_ms = 100;
    accept(&s, &[running, short, job("long", "e")], 0).await;
    s.claim("e", &by("w", "host"), 1, 1).await.unwrap(); // "running"
    // Past its ttl a queued job is not claimed, and the sweep times it out.
    assert_eq!(s.queue_depth("e", 150).await.unwrap(), 1);
    let expired = s.expire_ttl(150, 1000).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, "short");
    assert_eq!(expired[0].status, JobStatus::TimedOut);
    assert_eq!(
        status(&s, "e", "running").await,
        Some(JobStatus::InProgress)
    );
    assert_eq!(status(&s, "e", "long").await, Some(JobStatus::InQueue));
}

pub async fn retention_purges_final_jobs_once_webhooks_settle<
    S: JobStore + EndpointStore + HandlerStore + WebhookStore,
>(
    s: S,
) {
    seeded(&s).await;
    let mut hooked = job("hooked", "e");
    hooked.webhook = Some("http://127.0.0.1:9/hook".into());
    accept(&s, &[job("plain", "e"), hooked, job("queued", "e")], 0).await;
    s.claim("e", &by("w", "host"), 2, 1).await.unwrap();
    let finished = s
        .finish(
            &[
                done("plain", "w", JobStatus::Completed),
                done("hooked", "w", JobStatus::Completed),
            ],
            10,
        )
        .await
        .unwrap();
    assert!(
        finished
            .iter()
            .any(|j| j.id == "hooked" && j.webhook_pending)
    );
    assert_eq!(s.next_webhook_at().await.unwrap(), Some(10));
    assert_eq!(s.due_webhooks(10, 10).await.unwrap().len(), 1);
    // Not yet expired: kept.
    assert_eq!(s.purge_expired(500).await.unwrap(), 0);
    // Expired: the plain one goes; the hooked one waits for its webhook.
    assert_eq!(s.purge_expired(2000).await.unwrap(), 1);
    assert_eq!(status(&s, "e", "plain").await, None);
    s.webhook_attempted("hooked", true, None, None)
        .await
        .unwrap();
    assert_eq!(s.purge_expired(2000).await.unwrap(), 1);
    assert_eq!(status(&s, "e", "queued").await, Some(JobStatus::InQueue));
}

pub async fn reports_stream_in_order_once<S: JobStore + EndpointStore + HandlerStore>(s: S) {
    seeded(&s).await;
    accept(&s, &[job("a", "e")], 0).await;
    s.claim("e", &by("w", "host"), 1, 1).await.unwrap();
    s.report(
        "a",
        0,
        Some("{\"p\":1}"),
        &[(0, "\"x\"".into()), (1, "\"y\"".into())],
    )
    .await
    .unwrap();
    let rec = s.get_job("e", "a").await.unwrap().unwrap();
    assert_eq!(rec.progress.as_deref(), Some("{\"p\":1}"));
    s.report("a", 0, None, &[(2, "\"z\"".into())])
        .await
        .unwrap();
    assert_eq!(
        s.take_stream("a").await.unwrap(),
        ["\"x\"", "\"y\"", "\"z\""]
    );
    assert!(
        s.take_stream("a").await.unwrap().is_empty(),
        "handed out once"
    );
}

pub async fn jobs_list_newest_first_and_stream_looks_do_not_consume<
    S: JobStore + EndpointStore + HandlerStore,
>(
    s: S,
) {
    seeded(&s).await;
    accept(&s, &[job("a", "e"), job("b", "e"), job("c", "e")], 0).await;
    accept(&s, &[job("x", "f")], 0).await;
    s.claim("e", &by("w", "host"), 1, 1).await.unwrap();
    s.report("a", 0, None, &[(0, "\"x\"".into()), (1, "\"y\"".into())])
        .await
        .unwrap();
    assert_eq!(s.stream_chunks("a").await.unwrap(), ["\"x\"", "\"y\""]);
    assert_eq!(
        s.take_stream("a").await.unwrap(),
        ["\"x\"", "\"y\""],
        "a look leaves the chunks to /stream"
    );
    s.finish(&[done("a", "w", JobStatus::Failed)], 2)
        .await
        .unwrap();
    let ids = |v: Vec<JobSummary>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_jobs("e", None, 10).await.unwrap()),
        ["c", "b", "a"]
    );
    assert_eq!(ids(s.list_jobs("e", None, 1).await.unwrap()), ["c"]);
    let failed = s.list_jobs("e", Some(JobStatus::Failed), 10).await.unwrap();
    assert_eq!(ids(failed.clone()), ["a"]);
    assert_eq!(failed[0].error.as_deref(), Some("boom"));
    assert_eq!(failed[0].worker_id.as_deref(), Some("w"));
    assert_eq!(ids(s.list_jobs("f", None, 10).await.unwrap()), ["x"]);
}

fn line(endpoint: &str, job: Option<&str>, at: i64, level: Level, message: &str) -> NewLogLine {
    NewLogLine {
        endpoint_id: endpoint.to_string(),
        worker_id: Some("w1".to_string()),
        job_id: job.map(str::to_string),
        at,
        source: LogSource::Log,
        level,
        message: message.to_string(),
    }
}

pub async fn logs_are_filtered_trimmed_and_go_with_their_endpoint<
    S: JobStore + EndpointStore + HandlerStore + LogStore,
>(
    s: S,
) {
    seeded(&s).await;
    let stored = s
        .append_logs(vec![
            line("e", None, 10, Level::Info, "worker ready"),
            line("e", Some("a"), 20, Level::Debug, "a: start"),
            line("e", Some("a"), 30, Level::Error, "a: failed"),
            line("e", Some("b"), 40, Level::Warn, "b: slow"),
            line("f", Some("x"), 50, Level::Info, "x: hello"),
        ])
        .await
        .unwrap();
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows");
    let messages = |v: Vec<LogLine>| v.into_iter().map(|l| l.message).collect::<Vec<_>>();
    let of = |f: LogFilter| LogFilter {
        endpoint_id: "e".into(),
        limit: 100,
        ..f
    };
    let all = s.query_logs(&of(LogFilter::default())).await.unwrap();
    assert_eq!(all.len(), 4, "only endpoint e's lines");
    let job_a = of(LogFilter {
        job_id: Some("a".into()),
        ..Default::default()
    });
    assert_eq!(
        messages(s.query_logs(&job_a).await.unwrap()),
        ["a: start", "a: failed"]
    );
    let warn_up = of(LogFilter {
        min_level: Some(Level::Warn),
        ..Default::default()
    });
    assert_eq!(
        messages(s.query_logs(&warn_up).await.unwrap()),
        ["a: failed", "b: slow"]
    );
    let window = of(LogFilter {
        since: Some(20),
        until: Some(40),
        ..Default::default()
    });
    assert_eq!(
        messages(s.query_logs(&window).await.unwrap()),
        ["a: start", "a: failed"]
    );
    let after = of(LogFilter {
        after: Some(all[2].seq),
        ..Default::default()
    });
    assert_eq!(messages(s.query_logs(&after).await.unwrap()), ["b: slow"]);
    let last_two = LogFilter {
        limit: 2,
        ..of(LogFilter::default())
    };
    assert_eq!(
        messages(s.query_logs(&last_two).await.unwrap()),
        ["a: failed", "b: slow"],
        "the last lines, oldest first"
    );
    for l in &all {
        assert!(job_a.matches(l) == (l.job.as_deref() == Some("a")));
    }

    // Age first (before 20 goes), then count (the newest 3 stay).
    assert_eq!(s.trim_logs(20, 3).await.unwrap(), 2);
    assert_eq!(
        messages(s.query_logs(&of(LogFilter::default())).await.unwrap()),
        ["a: failed", "b: slow"]
    );
    assert!(s.delete_endpoint("e").await.unwrap());
    assert!(
        s.query_logs(&of(LogFilter::default()))
            .await
            .unwrap()
            .is_empty()
    );
    let f = LogFilter {
        endpoint_id: "f".into(),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(messages(s.query_logs(&f).await.unwrap()), ["x: hello"]);
}

pub async fn low_priority_claims_stop_at_the_hosts_cap<
    S: JobStore + EndpointStore + HandlerStore,
>(
    s: S,
) {
    seeded(&s).await;
    let low = |id: &str| {
        let mut j = job(id, "e");
        j.low_priority = true;
        j
    };
    accept(&s, &[low("l1"), low("l2"), low("l3"), job("n1", "e")], 0).await;
    let claim = |worker: &str, host: &str, limit: usize, low_cap: usize| ClaimRequest {
        endpoint_id: "e".to_string(),
        by: by(worker, host),
        limit,
        low_cap,
    };
    let ids = |o: &BatchOutcome, i: usize| -> Vec<String> {
        o.claimed[i].iter().map(|j| j.id.clone()).collect()
    };
    let batch = Batch {
        claims: vec![claim("w1", "a", 4, 2)],
        ..Batch::default()
    };
    let o = s.commit(batch, 10).await.unwrap();
    assert_eq!(
        ids(&o, 0),
        ["n1", "l1", "l2"],
        "normal first, then up to the cap"
    );
    assert_eq!(
        o.claimed[0]
            .iter()
            .map(|j| j.low_priority)
            .collect::<Vec<_>>(),
        [false, true, true]
    );
    // Host a runs two already: none more there; host b has room.
    let batch = Batch {
        claims: vec![claim("w2", "a", 4, 2)],
        ..Batch::default()
    };
    assert!(ids(&s.commit(batch, 20).await.unwrap(), 0).is_empty());
    accept(&s, &[job("n2", "e")], 25).await;
    let batch = Batch {
        claims: vec![claim("w2", "a", 4, 2)],
        ..Batch::default()
    };
    assert_eq!(
        ids(&s.commit(batch, 30).await.unwrap(), 0),
        ["n2"],
        "normal jobs pass the cap"
    );
    let batch = Batch {
        claims: vec![claim("w3", "b", 4, 2)],
        ..Batch::default()
    };
    assert_eq!(ids(&s.commit(batch, 40).await.unwrap(), 0), ["l3"]);
}

fn requests(from: usize, to: usize) -> Vec<BatchRequest> {
    (from..to)
        .map(|i| BatchRequest {
            id: format!("r{i:04}"),
            input: format!("{{\"i\":{i}}}"),
        })
        .collect()
}

const CAPS: BatchCaps = BatchCaps {
    max_requests: 10,
    max_active: 2,
    draft_retention_ms: 5000,
};

pub async fn batches_are_drafted_finalized_behind_real_time_jobs_and_paged<
    S: JobStore + EndpointStore + HandlerStore + BatchStore,
>(
    s: S,
) {
    seeded(&s).await;
    let new = |id: &str, n: usize| NewBatch {
        id: id.to_string(),
        endpoint_id: "e".to_string(),
        name: Some(format!("batch {id}")),
        requests: requests(0, n),
    };
    assert_eq!(
        s.create_batch(&new("big", 11), &CAPS, 0)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::TooMany { has: 0, max: 10 }
    );
    let b = s
        .create_batch(&new("b", 4), &CAPS, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.status, b.counts.total), (BatchStatus::Draft, 4));
    assert_eq!(b.name.as_deref(), Some("batch b"));
    // Drafts count as active: a second fits, a third does not.
    let other = s
        .create_batch(&new("c", 0), &CAPS, 101)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.counts.total, 0);
    assert_eq!(
        s.create_batch(&new("d", 0), &CAPS, 102)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::TooManyActive { max: 2 }
    );
    // Add to the draft, past the cap refused; remove one.
    let more = requests(4, 8);
    let b = s
        .add_batch_requests("e", "b", &more, &CAPS, 110)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.counts.total, 8);
    assert_eq!(
        s.add_batch_requests("e", "b", &requests(8, 11), &CAPS, 111)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::TooMany { has: 8, max: 10 }
    );
    let changed = BatchRequest {
        id: "r0001".to_string(),
        input: "{\"changed\":true}".to_string(),
    };
    s.update_batch_request("e", "b", &changed, &CAPS, 111)
        .await
        .unwrap()
        .unwrap();
    let (_, first) = s.batch_items("e", "b", 1, 1).await.unwrap().unwrap();
    assert!(matches!(&first[0], BatchItem::Draft(r) if r.input == changed.input));
    let missing = BatchRequest {
        id: "r9999".to_string(),
        input: "1".to_string(),
    };
    assert_eq!(
        s.update_batch_request("e", "b", &missing, &CAPS, 111)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::NoRequest
    );
    let b = s
        .remove_batch_request("e", "b", "r0002", &CAPS, 112)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.counts.total, 7);
    assert_eq!(
        s.remove_batch_request("e", "b", "r0002", &CAPS, 113)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::NoRequest
    );
    assert_eq!(
        s.add_batch_requests("f", "b", &requests(20, 21), &CAPS, 113)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::NotFound,
        "a batch belongs to its endpoint"
    );
    let (_, page) = s.batch_items("e", "b", 1, 3).await.unwrap().unwrap();
    let ids: Vec<String> = page
        .iter()
        .map(|i| match i {
            BatchItem::Draft(r) => r.id.clone(),
            BatchItem::Job(j) => panic!("a draft has no jobs: {}", j.id),
        })
        .collect();
    assert_eq!(ids, ["r0001", "r0003", "r0004"]);
    // Nothing queued before finalize; an empty draft cannot be finalized.
    assert_eq!(s.queue_depth("e", 120).await.unwrap(), 0);
    assert_eq!(
        s.finalize_batch("e", "c", 60_000, 120)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::Empty
    );
    // A real-time job queued before the batch is finalized, and one after:
    // both are claimed before any of the batch's requests.
    accept(&s, &[job("rt1", "e")], 120).await;
    let b = s
        .finalize_batch("e", "b", 60_000, 130)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, BatchStatus::Finalized);
    assert_eq!((b.counts.total, b.counts.in_queue), (7, 7));
    assert_eq!(
        s.add_batch_requests("e", "b", &requests(30, 31), &CAPS, 131)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::NotDraft(BatchStatus::Finalized)
    );
    accept(&s, &[job("rt2", "e")], 140).await;
    let got = s.claim("e", &by("w", "host"), 4, 150).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["rt1", "rt2", "r0000", "r0001"]);
    let b = s.get_batch("e", "b").await.unwrap().unwrap();
    assert_eq!((b.counts.in_queue, b.counts.in_progress), (5, 2));
    let mut fail = done("r0001", "w", JobStatus::Failed);
    fail.retention_ms = 1;
    s.finish(&[done("r0000", "w", JobStatus::Completed), fail], 160)
        .await
        .unwrap();
    // A batch's jobs outlive the job retention: they go with the batch.
    s.purge_expired(1_000_000).await.unwrap();
    assert_eq!(status(&s, "e", "r0001").await, Some(JobStatus::Failed));
    // Cancel: queued requests are cancelled, the running one is left.
    let rest = s.claim("e", &by("w", "host"), 1, 170).await.unwrap();
    assert_eq!(rest[0].id, "r0003");
    let c = s.cancel_batch("e", "b", 1000, 180).await.unwrap().unwrap();
    assert_eq!(c.cancelled.len(), 4);
    assert!(c.cancelled.iter().all(|j| j.status == JobStatus::Cancelled));
    let counts = c.batch.counts;
    assert_eq!(c.batch.status, BatchStatus::Cancelled);
    assert_eq!(
        (
            counts.total,
            counts.completed,
            counts.failed,
            counts.in_progress,
            counts.cancelled
        ),
        (7, 1, 1, 1, 4)
    );
    assert_eq!(
        s.cancel_batch("e", "b", 1000, 181)
            .await
            .unwrap()
            .unwrap_err(),
        BatchRefusal::Over(BatchStatus::Cancelled)
    );
    // Pages of the finalized batch: in the order added, with results.
    let (_, page) = s.batch_items("e", "b", 0, 10).await.unwrap().unwrap();
    let seen: Vec<(String, JobStatus)> = page
        .iter()
        .map(|i| match i {
            BatchItem::Job(j) => (j.id.clone(), j.status),
            BatchItem::Draft(r) => panic!("finalized: {}", r.id),
        })
        .collect();
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0], ("r0000".to_string(), JobStatus::Completed));
    assert_eq!(seen[1], ("r0001".to_string(), JobStatus::Failed));
    assert_eq!(seen[2], ("r0003".to_string(), JobStatus::InProgress));
    assert_eq!(seen[6], ("r0007".to_string(), JobStatus::Cancelled));
    let list = s.list_batches("e", 10).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["c", "b"], "newest first");
    // Purge: not while a request runs; a retention after the last ends.
    assert_eq!(
        s.purge_batches(10_000, 1000).await.unwrap(),
        1,
        "the empty draft c expired"
    );
    s.finish(&[done("r0003", "w", JobStatus::Completed)], 10_100)
        .await
        .unwrap();
    assert_eq!(s.purge_batches(10_200, 1000).await.unwrap(), 0);
    assert!(s.get_batch("e", "b").await.unwrap().is_some());
    assert_eq!(s.purge_batches(11_200, 1000).await.unwrap(), 1);
    assert!(s.get_batch("e", "b").await.unwrap().is_none());
    assert_eq!(
        status(&s, "e", "r0000").await,
        None,
        "its jobs went with it"
    );
    assert_eq!(status(&s, "e", "rt1").await, Some(JobStatus::InProgress));
}

/// Runs every rule above against one backend: `store_suite!(name, make)`
/// where `make` is an async block yielding `(guard, store)` (the guard
/// keeps the database alive for the test).
macro_rules! store_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test]
                    async fn $case() {
                        let (_guard, store) = $make.await;
                        super::$case(store).await;
                    }
                };
            }

            case!(claims_take_normal_priority_first_in_order);
            case!(claims_only_for_the_current_handler);
            case!(accept_can_hand_a_job_to_a_worker);
            case!(finish_needs_the_claiming_worker);
            case!(a_job_is_accepted_and_finished_in_one_commit_as_of_its_accept);
            case!(lost_jobs_are_requeued_until_retries_are_spent);
            case!(orphans_of_another_host_are_recovered);
            case!(cancel_queued_running_and_final);
            case!(retry_only_failed_or_timed_out);
            case!(ttl_expires_queued_jobs_only);
            case!(retention_purges_final_jobs_once_webhooks_settle);
            case!(reports_stream_in_order_once);
            case!(jobs_list_newest_first_and_stream_looks_do_not_consume);
            case!(logs_are_filtered_trimmed_and_go_with_their_endpoint);
            case!(low_priority_claims_stop_at_the_hosts_cap);
            case!(batches_are_drafted_finalized_behind_real_time_jobs_and_paged);
        }
    };
}

store_suite!(sqlite, async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = crate::store::sqlite::SqliteStore::open(&url)
        .await
        .expect("opening SQLite");
    (dir, store)
});

#[path = "../../../tests/common/postgres.rs"]
mod pg_server;

store_suite!(postgres, async {
    let url = tokio::task::spawn_blocking(|| super::pg_server::shared().create_database())
        .await
        .expect("creating a database");
    let store = crate::store::postgres::PgStore::open(&url, std::time::Duration::from_secs(10))
        .await
        .expect("opening Postgres");
    ((), store)
});
