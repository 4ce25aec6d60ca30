//! The engine in virtual time: limits, fallbacks and the abandon budget.

use std::time::Duration;

use pacer_acd::AgentView;

use super::*;

fn agents(ready: u32, in_call: &[f64], wrap: &[f64]) -> AgentView {
    AgentView {
        logged_in: ready + in_call.len() as u32 + wrap.len() as u32,
        ready,
        in_call: in_call.to_vec(),
        wrap_up: wrap.to_vec(),
        ..AgentView::default()
    }
}

fn input<'a>(now: f64, a: &'a AgentView, calls: &'a [CallInFlight], figures: AbandonFigures, trunk: u32) -> PacingInput<'a> {
    PacingInput { now: Duration::from_secs_f64(now), agents: a, calls, since_start: figures, rolling_30d: figures, trunk_capacity: trunk }
}

fn predictive(settings: PacingSettings) -> CampaignPacer {
    let mut p = CampaignPacer::new(PacingSettings { mode: PacingMode::Predictive, ..settings });
    // A campaign with history: 25% people, 8 s rings, two-minute talks.
    for i in 0..400 {
        p.on_outcome(match i % 4 {
            0 => Outcome::Human { ring_s: 8.0, verdict_s: 1.0 },
            1 => Outcome::Machine { ring_s: 12.0, verdict_s: 3.0 },
            _ => Outcome::NoAnswer { after_s: 25.0 },
        });
        p.on_talk(120.0);
        p.on_wrap(10.0);
    }
    p
}

fn ringing(n: usize, age: f64) -> Vec<CallInFlight> {
    vec![CallInFlight { age_s: age, stage: CallStage::Ringing, stage_age_s: age }; n]
}

const HEALTHY: AbandonFigures = AbandonFigures { human: 2000, abandoned: 20 };

#[test]
fn progressive_dials_one_call_per_ready_agent() {
    let mut p = CampaignPacer::new(PacingSettings { mode: PacingMode::Progressive, ..Default::default() });
    let a = agents(5, &[30.0], &[]);
    let calls = ringing(2, 3.0);
    let d = p.decide(&input(0.0, &a, &calls, HEALTHY, 100));
    assert_eq!((d.dial, d.reason), (3, Reason::Progressive));
    assert_eq!(d.next_at, Duration::from_secs_f64(0.5));
}

#[test]
fn power_keeps_ratio_times_ready_in_flight() {
    let mut p = CampaignPacer::new(PacingSettings { mode: PacingMode::Power { ratio: 2.5 }, ..Default::default() });
    let a = agents(4, &[], &[]);
    let calls = ringing(3, 1.0);
    assert_eq!(p.decide(&input(0.0, &a, &calls, HEALTHY, 100)).dial, 7);
}

#[test]
fn preview_never_dials_by_itself() {
    let mut p = CampaignPacer::new(PacingSettings { mode: PacingMode::Preview, ..Default::default() });
    let a = agents(10, &[], &[]);
    assert_eq!(p.decide(&input(0.0, &a, &[], HEALTHY, 100)).dial, 0);
}

#[test]
fn predictive_dials_harder_than_progressive_when_agents_free_up() {
    let mut p = predictive(PacingSettings::default());
    let a = agents(10, &[100.0; 10], &[5.0; 5]);
    let d = p.decide(&input(100.0, &a, &[], HEALTHY, 1000));
    assert_eq!(d.reason, Reason::Predicted);
    assert!(d.dial > 10, "only {} calls for 10 ready agents at a 25% answer rate", d.dial);
    let e = p.explain();
    assert!((e.answer_rate - 0.25).abs() < 0.05, "{e:?}");
    assert!(e.expected_agents_free_10s >= 10.0, "{e:?}");
}

#[test]
fn predictive_holds_back_when_calls_in_flight_will_cover_the_agents() {
    let mut p = predictive(PacingSettings::default());
    let a = agents(2, &[5.0; 8], &[]);
    // Forty fresh calls will bring about ten people: far more than two agents.
    let calls = ringing(40, 1.0);
    assert_eq!(p.decide(&input(100.0, &a, &calls, HEALTHY, 1000)).dial, 0);
}

#[test]
fn never_beyond_max_lines_or_trunk_capacity() {
    let mut p = predictive(PacingSettings { max_lines_per_agent: 2.0, ..Default::default() });
    let a = agents(10, &[], &[]);
    let calls = ringing(15, 0.5);
    let d = p.decide(&input(100.0, &a, &calls, HEALTHY, 1000));
    assert_eq!((d.dial, d.reason), (5, Reason::CappedByLines));
    let d = p.decide(&input(100.5, &a, &[], HEALTHY, 3));
    assert_eq!((d.dial, d.reason), (3, Reason::CappedByTrunk));
    let d = p.decide(&input(101.0, &a, &[], HEALTHY, 0));
    assert_eq!(d.dial, 0);
}

#[test]
fn falls_back_to_progressive_below_the_agent_threshold() {
    let mut p = predictive(PacingSettings { min_agents: 5, ..Default::default() });
    let a = agents(4, &[], &[]);
    let d = p.decide(&input(100.0, &a, &[], HEALTHY, 1000));
    assert_eq!((d.dial, d.reason), (4, Reason::TooFewAgents));
}

#[test]
fn stops_risky_dialling_when_the_budget_is_spent_and_resumes_after() {
    let mut p = predictive(PacingSettings::default());
    let a = agents(10, &[], &[]);
    let spent = AbandonFigures { human: 1000, abandoned: 30 };
    let mut healthy = predictive(PacingSettings::default());
    let free = healthy.decide(&input(100.0, &a, &[], HEALTHY, 1000)).dial;
    let d = p.decide(&input(100.0, &a, &[], spent, 1000));
    assert_eq!(d.reason, Reason::BudgetSpent);
    // One call per ready agent at least, and beyond that only calls all but sure to find one.
    assert!(d.dial >= 10 && d.dial < free, "{} calls with the budget spent, {free} with budget left", d.dial);
    assert_eq!(p.explain().margin, SPENT_MAX_RISK);
    let calls = ringing(30, 1.0);
    // Thirty fresh calls bring about seven people for ten agents: with budget left the engine
    // adds calls; with the budget spent, far fewer or none.
    let spent_more = p.decide(&input(100.5, &a, &calls, spent, 1000)).dial;
    let healthy_more = healthy.decide(&input(100.5, &a, &calls, HEALTHY, 1000)).dial;
    assert!(spent_more < healthy_more, "{spent_more} calls with the budget spent, {healthy_more} with budget left");
    // The 30-day window binds too.
    let window = AbandonFigures { human: 100, abandoned: 3 };
    let mut i = input(101.0, &a, &[], HEALTHY, 1000);
    i.rolling_30d = window;
    assert_eq!(p.decide(&i).reason, Reason::BudgetSpent);
    // Progressive connects add people without abandons: the budget recovers.
    let recovered = AbandonFigures { human: 1200, abandoned: 30 };
    let d = p.decide(&input(200.0, &a, &[], recovered, 1000));
    assert_eq!(d.reason, Reason::Predicted);
    assert!(d.dial > 10);
}

#[test]
fn abandon_target_is_capped_at_three_percent() {
    let p = CampaignPacer::new(PacingSettings { abandon_target: 0.10, ring_timeout_s: 5.0, ..Default::default() });
    assert_eq!(p.settings().abandon_target, 0.03);
    assert_eq!(p.settings().ring_timeout_s, 15.0);
}

#[test]
fn no_agents_no_calls() {
    let mut p = predictive(PacingSettings::default());
    let a = AgentView::default();
    assert_eq!(p.decide(&input(100.0, &a, &[], HEALTHY, 1000)).dial, 0);
}

#[test]
fn late_rings_are_hung_up_only_when_risky_and_never_before_min_ring() {
    // A campaign near its target (a healthy one may dial, and keep late rings, freely).
    const NEAR_TARGET: AbandonFigures = AbandonFigures { human: 2000, abandoned: 52 };
    // Every agent is busy for minutes: a person answering now would be abandoned.
    let busy = agents(0, &[5.0; 10], &[]);
    let calls = [ringing(3, 20.0), ringing(3, 10.0)].concat();
    let mut p = predictive(PacingSettings { min_agents: 1, ..Default::default() });
    let d = p.decide(&input(100.0, &busy, &calls, NEAR_TARGET, 1000));
    assert_eq!(d.dial, 0, "{:?}", d.reason);
    assert_eq!(p.hang_ups(), &[0, 1, 2], "{:?} the three calls ringing 20 s, not the 10 s ones", d.reason);

    // With agents free, the same late rings are welcome.
    let free = agents(10, &[], &[]);
    p.decide(&input(100.5, &free, &calls, NEAR_TARGET, 1000));
    assert!(p.hang_ups().is_empty());

    // A campaign whose calls must ring to the timeout never hangs up.
    let mut full = predictive(PacingSettings { min_agents: 1, min_ring_s: 25.0, ..Default::default() });
    full.decide(&input(100.0, &busy, &calls, NEAR_TARGET, 1000));
    assert!(full.hang_ups().is_empty());

    // Below 15 s is never allowed, whatever the setting says.
    let mut early = predictive(PacingSettings { min_agents: 1, min_ring_s: 5.0, ..Default::default() });
    early.decide(&input(100.0, &busy, &calls, NEAR_TARGET, 1000));
    assert_eq!(early.hang_ups(), &[0, 1, 2]);

    // Other modes never advise it.
    let mut prog = CampaignPacer::new(PacingSettings { mode: PacingMode::Progressive, ..Default::default() });
    prog.decide(&input(100.0, &busy, &calls, NEAR_TARGET, 1000));
    assert!(prog.hang_ups().is_empty());
}

#[test]
fn a_hung_up_call_counts_by_its_posterior() {
    let mut p = predictive(PacingSettings::default());
    let a = agents(10, &[], &[]);
    p.decide(&input(100.0, &a, &[], HEALTHY, 1000));
    let before = p.explain().answer_rate;
    // Calls hung up after 24 s of ringing were almost all no-answers: the answer rate falls,
    // but by less than if each had been counted a no-answer.
    for _ in 0..200 {
        p.on_outcome(Outcome::HungUp { after_s: 24.0 });
    }
    p.decide(&input(101.0, &a, &[], HEALTHY, 1000));
    let after = p.explain().answer_rate;
    assert!(after < before && after > 0.0, "{before} -> {after}");
    let mut q = predictive(PacingSettings::default());
    for _ in 0..200 {
        q.on_outcome(Outcome::NoAnswer { after_s: 24.0 });
    }
    q.decide(&input(101.0, &a, &[], HEALTHY, 1000));
    assert!(q.explain().answer_rate <= after);
}
