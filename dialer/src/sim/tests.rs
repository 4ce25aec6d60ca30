use super::*;

fn scenario(name: &str) -> Scenario {
    let path = format!("{}/../benches/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    Scenario::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn standard_scenarios_parse() {
    for name in ["S", "M", "L", "D"] {
        let s = scenario(name);
        assert_eq!(s.name, name);
    }
    let d = scenario("D");
    assert!((d.human_rate(2.0) - 0.25).abs() < 1e-9);
    assert!((d.human_rate(4.0) - 0.15).abs() < 1e-9);
}

#[test]
fn bad_scenarios_list_every_problem() {
    let mut text = std::fs::read_to_string(format!("{}/../benches/scenarios/M.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text = text.replace("agents = 20", "agents = 0").replace("human = 0.25", "human = 1.5").replace("connect_limit = 2.0", "connect_limit = -1.0");
    let problems = Scenario::from_toml(&text).unwrap_err();
    for key in ["agents:", "outcomes.human:", "timing.connect_limit:"] {
        assert!(problems.iter().any(|p| p.starts_with(key)), "{key} missing in {problems:?}");
    }
    let unknown = Scenario::from_toml("name = \"x\"\nagentz = 3\n").unwrap_err();
    assert!(unknown[0].contains("agentz") || unknown[0].contains("missing"), "{unknown:?}");
}

#[test]
fn runs_are_reproducible_per_seed() {
    let mut s = scenario("M");
    s.hours = 0.5;
    assert_eq!(run_seed(&s, Policy::Predictive, 3), run_seed(&s, Policy::Predictive, 3));
    assert_ne!(run_seed(&s, Policy::Predictive, 3), run_seed(&s, Policy::Predictive, 4));
}

#[test]
fn progressive_never_abandons_and_lands_near_the_reference() {
    let mut s = scenario("M");
    s.hours = 2.0;
    let r = run(&s, Policy::Progressive, 2);
    assert_eq!(r.abandon_rate, 0.0);
    assert!((0.58..0.70).contains(&r.occupancy), "{r:?}");
}

#[test]
fn predictive_beats_progressive_within_the_abandon_target() {
    let mut s = scenario("M");
    s.hours = 2.0;
    let pred = run(&s, Policy::Predictive, 2);
    let prog = run(&s, Policy::Progressive, 2);
    assert!(pred.occupancy > prog.occupancy + 0.15, "{pred:?} vs {prog:?}");
    assert!(pred.abandon_rate_worst_seed <= 0.03, "{pred:?}");
}
