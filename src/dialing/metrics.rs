//! Prometheus collectors of the live dialer. Labels are bounded: campaign names (a few
//! per call centre), outcome codes, stages and agent states — never a lead or a call.

use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct DialMetrics {
    pub calls: IntCounterVec,
    pub dials: IntCounterVec,
    pub hang_ups: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub dial_level: GaugeVec,
    pub abandon_rate: GaugeVec,
    pub answer_rate: GaugeVec,
    pub machine_rate: GaugeVec,
    pub expected_agents_free: GaugeVec,
    pub expected_answers: GaugeVec,
    pub margin: GaugeVec,
    pub agents: IntGaugeVec,
    pub connect_seconds: HistogramVec,
    pub amd_verdicts: IntCounterVec,
    pub amd_seconds: HistogramVec,
    pub recording_failures: IntCounterVec,
    pub db_seconds: HistogramVec,
    pub outcome_write_failures: IntCounterVec,
    pub kill_switch: Gauge,
    pub blocked: IntCounterVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("static metric definition")
}

impl DialMetrics {
    pub fn new() -> DialMetrics {
        DialMetrics {
            calls: counter("pacer_calls_total", "Finished outbound calls by campaign and outcome (system disposition code).", &["campaign", "outcome"]),
            dials: counter("pacer_dials_total", "Calls started, by campaign (rate() gives dials per second).", &["campaign"]),
            hang_ups: counter("pacer_pacing_hang_ups_total", "Late rings the pacing engine advised hanging up (a person answering would probably have been abandoned).", &["campaign"]),
            in_flight: IntGaugeVec::new(Opts::new("pacer_calls_in_flight", "Calls in progress by campaign and stage (ringing, detecting, waiting, connected, wrap_up)."), &["campaign", "stage"])
                .expect("static metric definition"),
            dial_level: gauge("pacer_dial_level", "Calls in flight per active agent after the last pacing decision.", &["campaign"]),
            abandon_rate: gauge("pacer_abandon_rate", "Abandoned ÷ human-answered calls, by campaign and window (today, 30d, since_start).", &["campaign", "window"]),
            answer_rate: gauge("pacer_pacing_answer_rate", "The pacing engine's estimate of the share of dials a person answers.", &["campaign"]),
            machine_rate: gauge("pacer_pacing_machine_rate", "The pacing engine's estimate of the share of dials a machine answers.", &["campaign"]),
            expected_agents_free: gauge("pacer_pacing_expected_agents_free_10s", "Agents the engine expects free within 10 s.", &["campaign"]),
            expected_answers: gauge("pacer_pacing_expected_answers_in_flight", "Human answers the engine expects from the calls in flight.", &["campaign"]),
            margin: gauge("pacer_pacing_margin", "Largest abandon risk the engine accepts for the next call (predictive).", &["campaign"]),
            agents: IntGaugeVec::new(Opts::new("pacer_agents", "Logged-in agents by state."), &["state"]).expect("static metric definition"),
            connect_seconds: histogram(
                "pacer_connect_seconds",
                "Time from a person's answer (human verdict) to the agent's audio being connected.",
                &["campaign"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0],
            ),
            amd_verdicts: counter("pacer_amd_verdicts_total", "Answering-machine detection verdicts by campaign and verdict.", &["campaign", "verdict"]),
            amd_seconds: histogram("pacer_amd_decision_seconds", "Audio time from answer to the AMD verdict.", &["verdict"], vec![0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]),
            recording_failures: counter("pacer_recording_failures_total", "Recordings that could not be started or finished.", &["campaign"]),
            db_seconds: histogram(
                "pacer_db_query_seconds",
                "Database time of the dialer's operations (claim, outcome).",
                &["operation"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            outcome_write_failures: counter("pacer_outcome_write_failures_total", "Failed attempts to write a call's outcome (retried until written).", &["campaign"]),
            kill_switch: Gauge::new("pacer_kill_switch", "1 while dialling is stopped for every campaign by the kill switch.").expect("static metric definition"),
            blocked: counter(
                "pacer_calls_blocked_total",
                "Calls the toll-fraud guard refused to place, by reason (destination, premium, invalid).",
                &["reason"],
            ),
        }
    }

    pub fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.calls.clone()))?;
        r.register(Box::new(self.dials.clone()))?;
        r.register(Box::new(self.hang_ups.clone()))?;
        r.register(Box::new(self.in_flight.clone()))?;
        r.register(Box::new(self.dial_level.clone()))?;
        r.register(Box::new(self.abandon_rate.clone()))?;
        r.register(Box::new(self.answer_rate.clone()))?;
        r.register(Box::new(self.machine_rate.clone()))?;
        r.register(Box::new(self.expected_agents_free.clone()))?;
        r.register(Box::new(self.expected_answers.clone()))?;
        r.register(Box::new(self.margin.clone()))?;
        r.register(Box::new(self.agents.clone()))?;
        r.register(Box::new(self.connect_seconds.clone()))?;
        r.register(Box::new(self.amd_verdicts.clone()))?;
        r.register(Box::new(self.amd_seconds.clone()))?;
        r.register(Box::new(self.recording_failures.clone()))?;
        r.register(Box::new(self.db_seconds.clone()))?;
        r.register(Box::new(self.outcome_write_failures.clone()))?;
        r.register(Box::new(self.kill_switch.clone()))?;
        r.register(Box::new(self.blocked.clone()))?;
        Ok(())
    }
}
