//! Prometheus metrics of the application: build info, process figures, HTTP requests.
//!
//! One [`Registry`] per process; crates add their collectors to it. Labels are bounded:
//! HTTP routes are the matched route templates, never raw paths.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The application's registry and the metrics it updates itself.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build = IntGauge::with_opts(
            Opts::new("pacer_build_info", "Build of the running pacer; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION"))
                .const_label("rust_version", env!("CARGO_PKG_RUST_VERSION")),
        )
        .expect("valid metric");
        build.set(1);
        let http_requests = IntCounterVec::new(
            Opts::new("pacer_http_requests_total", "HTTP requests answered, by method, route and status."),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("pacer_http_request_duration_seconds", "Time to answer HTTP requests, by method and route.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["method", "route"],
        )
        .expect("valid metric");
        registry.register(Box::new(build)).expect("register build info");
        registry.register(Box::new(http_requests.clone())).expect("register http requests");
        registry.register(Box::new(http_duration.clone())).expect("register http duration");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::new(std::process::id() as i32, "pacer")))
            .expect("register process collector");
        Metrics { registry, http_requests, http_duration }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail on a Vec");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}
