//! Prometheus metrics, served on the admin listener at `/metrics`. Labels
//! are low-cardinality words (route class, method, outcome): never an
//! identity, a patient, a path or an address.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Encoder, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, TextEncoder,
};

pub struct Metrics {
    /// Requests by route class (`auth`, `portal`, `viewer`, `health`, `static`) and status class.
    pub requests: IntCounterVec,
    /// Request duration by route class.
    pub duration: HistogramVec,
    /// Logins by method (`psc`, `hm_sso`) and outcome (`success` or a reason code).
    pub logins: IntCounterVec,
    /// Session store errors by operation.
    pub store_errors: IntCounterVec,
    /// Policy reloads by outcome (`applied`, `refused`).
    pub policy_reloads: IntCounterVec,
    /// Requests refused by the login rate limit.
    pub rate_limited: IntCounterVec,
    /// 1 while the last policy reload attempt was refused.
    pub policy_reload_failing: IntGauge,
    /// Dossier number + birth date pairs evaluated against the records, by
    /// outcome (`match`, `no_match`): each one cost an attempt slot.
    pub dossier_number_checks: IntCounterVec,
    /// Dossier-number attempts refused before any evaluation, by reason
    /// (`locked`: recent failures; `number_locked`: daily budget spent).
    pub dossier_number_refusals: IntCounterVec,
    /// Dossier numbers locked because their daily failure budget ran out.
    pub dossier_numbers_locked: IntCounter,
    /// Unix time of the last `espace-ps records refresh` of the name-search
    /// views (0: never, or not PostgreSQL). Alert on its age.
    pub records_search_refreshed: IntGauge,
    /// Time from sending a request to the viewer to its response head.
    pub upstream_duration: Histogram,
    /// Viewer requests that got no response, by kind (`connect`,
    /// `timeout`, `closed`, `other`): [`UpstreamError`].
    pub upstream_errors: IntCounterVec,
    /// Policy decisions by action (`view_images`…) and outcome (`allow`,
    /// `deny`, `error`: an evaluation error, which is a "no").
    pub policy_decisions: IntCounterVec,
    /// Audit records that could not be written (each one refused what it
    /// was to record, or was logged as lost where nothing was allowed).
    pub audit_write_failures: IntCounter,
    /// Audit events handed to the second sink (`[audit] ship_*`).
    pub audit_shipped: IntCounter,
    /// Audit events the second sink lost, by reason: `queue_full` (the
    /// sink is slower than the traffic), `sink_down` (the file or the
    /// receiver refused them). The database still holds every one.
    pub audit_ship_dropped: IntCounterVec,
    /// Live sessions in the session store, counted at each scrape (with
    /// Redis, every instance reports the shared total).
    pub sessions_active: IntGauge,
    /// Dossier-number grants opened (number + birth date matched, policy said yes).
    pub grants_opened: IntCounter,
}

/// What went wrong when the viewer gave no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// The connection could not be made (refused, unreachable, TLS).
    Connect,
    /// Connecting, reading or writing timed out.
    Timeout,
    /// The viewer closed or reset the connection, or answered garbage.
    Closed,
    Other,
}

impl UpstreamError {
    const ALL: [UpstreamError; 4] = [
        UpstreamError::Connect,
        UpstreamError::Timeout,
        UpstreamError::Closed,
        UpstreamError::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Closed => "closed",
            UpstreamError::Other => "other",
        }
    }
}

/// The outcome of a policy decision, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    Allow,
    Deny,
    /// The evaluation failed: denied.
    Error,
}

impl DecisionOutcome {
    pub fn label(self) -> &'static str {
        match self {
            DecisionOutcome::Allow => "allow",
            DecisionOutcome::Deny => "deny",
            DecisionOutcome::Error => "error",
        }
    }
}

/// Counts one policy decision. The counters of every action and outcome
/// are resolved once (no label lookup by string per decision).
pub fn count_decision(action: espace_ps_access::Action, outcome: DecisionOutcome) {
    static HANDLES: LazyLock<Vec<[IntCounter; 3]>> = LazyLock::new(|| {
        espace_ps_access::Action::ALL
            .iter()
            .map(|a| {
                [
                    DecisionOutcome::Allow,
                    DecisionOutcome::Deny,
                    DecisionOutcome::Error,
                ]
                .map(|o| {
                    METRICS
                        .policy_decisions
                        .with_label_values(&[a.as_str(), o.label()])
                })
            })
            .collect()
    });
    let Some(i) = espace_ps_access::Action::ALL
        .iter()
        .position(|a| *a == action)
    else {
        return;
    };
    HANDLES[i][outcome as usize].inc();
}

/// Counts a viewer request that got no response.
pub fn count_upstream_error(kind: UpstreamError) {
    static HANDLES: LazyLock<[IntCounter; 4]> = LazyLock::new(|| {
        UpstreamError::ALL.map(|k| METRICS.upstream_errors.with_label_values(&[k.label()]))
    });
    HANDLES[kind as usize].inc();
}

/// The status label of a request: its class (`2xx`…), or `closed` when no
/// response was written because the client went away first (status 0): a
/// client disconnect is not a server error.
pub fn status_label(status: u16) -> &'static str {
    match status {
        0 => "closed",
        s => status_class(s),
    }
}

/// The status labels, in [`RouteHandles`] slot order.
const STATUS_LABELS: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "closed", "other"];

fn status_slot(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        0 => 5,
        _ => 6,
    }
}

/// The request counters and duration histogram of one route class,
/// resolved once: counting a request is then an atomic add, no label lookup.
pub struct RouteHandles {
    statuses: [IntCounter; 7],
    duration: Histogram,
}

impl RouteHandles {
    pub fn new(route: &str) -> RouteHandles {
        RouteHandles {
            statuses: STATUS_LABELS.map(|s| METRICS.requests.with_label_values(&[route, s])),
            duration: METRICS.duration.with_label_values(&[route]),
        }
    }

    /// Counts one answered (or abandoned: status 0) request.
    pub fn observe(&self, status: u16, secs: f64) {
        self.statuses[status_slot(status)].inc();
        self.duration.observe(secs);
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: register_int_counter_vec!(
        "espace_requests_total",
        "Requests handled, by route class and status class",
        &["route", "status"]
    )
    .expect("metric registers"),
    duration: register_histogram_vec!(
        "espace_request_duration_seconds",
        "Time to answer a request, by route class",
        &["route"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]
    )
    .expect("metric registers"),
    logins: register_int_counter_vec!(
        "espace_logins_total",
        "Login attempts by method and outcome",
        &["method", "outcome"]
    )
    .expect("metric registers"),
    store_errors: register_int_counter_vec!(
        "espace_session_store_errors_total",
        "Session store failures, by operation",
        &["op"]
    )
    .expect("metric registers"),
    policy_reloads: register_int_counter_vec!(
        "espace_policy_reloads_total",
        "Policy reloads, by outcome",
        &["outcome"]
    )
    .expect("metric registers"),
    rate_limited: register_int_counter_vec!(
        "espace_rate_limited_total",
        "Requests refused by a rate limit, by endpoint class",
        &["endpoint"]
    )
    .expect("metric registers"),
    policy_reload_failing: register_int_gauge!(
        "espace_policy_reload_failing",
        "1 when the last policy reload was refused and an older set is in force"
    )
    .expect("metric registers"),
    dossier_number_checks: register_int_counter_vec!(
        "espace_dossier_number_checks_total",
        "Dossier number and birth date pairs evaluated against the records, by outcome",
        &["outcome"]
    )
    .expect("metric registers"),
    dossier_number_refusals: register_int_counter_vec!(
        "espace_dossier_number_refusals_total",
        "Dossier-number attempts refused without evaluation, by reason",
        &["reason"]
    )
    .expect("metric registers"),
    dossier_numbers_locked: register_int_counter!(
        "espace_dossier_numbers_locked_total",
        "Dossier numbers locked after their daily failure budget ran out"
    )
    .expect("metric registers"),
    records_search_refreshed: register_int_gauge!(
        "espace_records_search_refreshed_timestamp_seconds",
        "Unix time of the last refresh of the records' name-search views (0: never)"
    )
    .expect("metric registers"),
    upstream_duration: register_histogram!(
        "espace_upstream_response_seconds",
        "Time from sending a request to the viewer to its response head",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers"),
    upstream_errors: register_int_counter_vec!(
        "espace_upstream_errors_total",
        "Viewer requests that got no response from the viewer, by kind",
        &["kind"]
    )
    .expect("metric registers"),
    policy_decisions: register_int_counter_vec!(
        "espace_policy_decisions_total",
        "Policy decisions, by action and outcome (allow, deny, error)",
        &["action", "outcome"]
    )
    .expect("metric registers"),
    audit_write_failures: register_int_counter!(
        "espace_audit_write_failures_total",
        "Audit records that could not be written"
    )
    .expect("metric registers"),
    audit_shipped: register_int_counter!(
        "espace_audit_shipped_total",
        "Audit events written to the second sink (file or syslog)"
    )
    .expect("metric registers"),
    audit_ship_dropped: register_int_counter_vec!(
        "espace_audit_ship_dropped_total",
        "Audit events the second sink lost (queue full, sink down); the database holds them",
        &["reason"]
    )
    .expect("metric registers"),
    sessions_active: register_int_gauge!(
        "espace_sessions_active",
        "Live sessions in the session store (shared by every instance with Redis)"
    )
    .expect("metric registers"),
    grants_opened: register_int_counter!(
        "espace_grants_opened_total",
        "Dossier-number grants opened"
    )
    .expect("metric registers"),
});

/// Registers what is not a counter of ours: `espace_build_info` (always 1,
/// its labels say what runs) and the process metrics (`process_*`: CPU,
/// memory, open files, start time). Once per process; later calls do nothing.
pub fn register_process_metrics() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        LazyLock::force(&METRICS);
        if let Ok(info) = register_int_gauge_vec!(
            "espace_build_info",
            "Always 1: the version of espace-ps that runs, and the revision it was built from",
            &["version", "revision"]
        ) {
            info.with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("ESPACE_BUILD_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        }
        let _ = prometheus::register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    });
}

/// The text exposition of every registered metric.
pub fn render() -> String {
    register_process_metrics();
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&prometheus::gather(), &mut buf)
        .expect("text encoding of metrics");
    String::from_utf8(buf).expect("metrics are UTF-8")
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_disconnect_is_not_a_server_error() {
        assert_eq!(status_label(0), "closed");
        assert_eq!(STATUS_LABELS[status_slot(0)], "closed");
        assert_eq!(status_label(502), "5xx");
        for s in [101, 204, 302, 404, 503] {
            assert_eq!(STATUS_LABELS[status_slot(s)], status_label(s), "{s}");
        }
    }

    #[test]
    fn exposition_has_build_info_and_process_metrics() {
        let text = render();
        assert!(
            text.contains(&format!(
                "espace_build_info{{revision=\"{}\",version=\"{}\"}} 1",
                option_env!("ESPACE_BUILD_REVISION").unwrap_or("unknown"),
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        for m in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(text.contains(m), "{m} in {text}");
        }
    }

    #[test]
    fn decision_counters_are_per_action_and_outcome() {
        let c = |o: &str| {
            METRICS
                .policy_decisions
                .with_label_values(&["download_dicom", o])
                .get()
        };
        let (allow, deny) = (c("allow"), c("deny"));
        count_decision(
            espace_ps_access::Action::DownloadDicom,
            DecisionOutcome::Deny,
        );
        assert_eq!((c("allow"), c("deny")), (allow, deny + 1));
    }
}
