//! Prometheus metrics, served on the admin listener at `/metrics`. Labels
//! are low-cardinality words (route class, method, outcome): never an
//! identity, a patient, a path or an address.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, TextEncoder,
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
});

/// The text exposition of every registered metric.
pub fn render() -> String {
    LazyLock::force(&METRICS);
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
