//! The toll-fraud guard: which numbers the dialer may call at all.
//!
//! A hijacked dialer (a stolen agent login, an API token, a doctored lead list) is worth
//! money to a fraudster only if it calls numbers that pay them: international ranges and
//! premium-rate lines. Every call Pacer places — predictive, progressive, preview, manual,
//! blind transfer — is checked here first.
//!
//! A number passes when it starts with one of the system's allowed prefixes
//! (`dialer.allowed_destinations`), with one of the campaign's (when the campaign names
//! any: it can only narrow the system's list), and is not a premium-rate, shared-cost or
//! personal number by libphonenumber's metadata (unless `dialer.allow_premium`).
//!
//! ```
//! use pacer_dialer::guard::{Guard, Refusal};
//! let g = Guard::new(vec!["+1".into()], false);
//! assert!(g.check("+12125550101").is_ok());
//! assert!(matches!(g.check("+442079460958"), Err(Refusal::Destination { .. })));
//! assert!(matches!(g.check("+19002345678"), Err(Refusal::Premium { .. })));
//! ```

use phonenumber::metadata::DATABASE;
use phonenumber::Type;

/// The system-wide rule, from `[dialer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    allowed: Vec<String>,
    allow_premium: bool,
}

/// Why a number is not dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{number} is outside the allowed destinations ({allowed})")]
    Destination { number: String, allowed: String },
    #[error("{number} is a {kind} number; premium-rate calls are refused (dialer.allow_premium)")]
    Premium { number: String, kind: &'static str },
    #[error("{number:?} is not an E.164 number")]
    Invalid { number: String },
}

impl Refusal {
    /// The `reason` label of `pacer_calls_blocked_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Destination { .. } => "destination",
            Refusal::Premium { .. } => "premium",
            Refusal::Invalid { .. } => "invalid",
        }
    }
}

/// The calling code of an ISO 3166 alpha-2 country, as a prefix (`US` → `+1`).
pub fn calling_code(country: &str) -> Option<String> {
    DATABASE.by_id(&country.to_ascii_uppercase()).map(|m| format!("+{}", m.country_code()))
}

/// The number types that cost the caller more than a normal call, and what to call them.
fn toll_kind(t: Type) -> Option<&'static str> {
    match t {
        Type::PremiumRate => Some("premium-rate"),
        Type::SharedCost => Some("shared-cost"),
        // UK 070 and the like: priced like premium lines, a classic fraud target.
        Type::PersonalNumber => Some("personal"),
        _ => None,
    }
}

impl Guard {
    pub fn new(allowed: Vec<String>, allow_premium: bool) -> Guard {
        Guard { allowed, allow_premium }
    }

    /// The guard `[dialer]` describes; `allowed_destinations` absent means the calling code
    /// of `default_country`.
    pub fn from_config(d: &pacer_config::DialerConfig) -> Result<Guard, String> {
        let allowed = match &d.allowed_destinations {
            Some(list) => list.clone(),
            None => vec![calling_code(&d.default_country).ok_or_else(|| format!("dialer.default_country: {:?} has no calling code", d.default_country))?],
        };
        Ok(Guard::new(allowed, d.allow_premium))
    }

    /// The system's allowed prefixes.
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// A campaign's prefixes that could never match a number the system allows (a campaign
    /// can only narrow the list): `(index, reason)` for each, so that a manager who meant to
    /// widen it is told rather than left wondering why nothing is dialled.
    pub fn campaign_problems(&self, campaign: &[String]) -> Vec<(usize, String)> {
        campaign
            .iter()
            .enumerate()
            // A malformed prefix is the settings' own problem, reported once there.
            .filter(|(_, c)| pacer_config::is_e164_prefix(c))
            .filter(|(_, c)| !self.allowed.iter().any(|p| c.starts_with(p.as_str()) || p.starts_with(c.as_str())))
            .map(|(i, c)| (i, format!("{c} is outside dialer.allowed_destinations ({}); a campaign can only narrow them", self.allowed.join(", "))))
            .collect()
    }

    /// Checks `number` (E.164) against the system's rule only.
    pub fn check(&self, number: &str) -> Result<(), Refusal> {
        self.check_for(number, &[])
    }

    /// Checks `number` (E.164) against the system's rule and a campaign's own prefixes
    /// (empty: the system's list alone).
    pub fn check_for(&self, number: &str, campaign: &[String]) -> Result<(), Refusal> {
        if !crate::settings::is_e164(number) {
            return Err(Refusal::Invalid { number: number.to_string() });
        }
        let within = |list: &[String]| list.iter().any(|p| number.starts_with(p.as_str()));
        if !within(&self.allowed) || (!campaign.is_empty() && !within(campaign)) {
            let allowed = if campaign.is_empty() {
                self.allowed.join(", ")
            } else {
                format!("{} narrowed by the campaign to {}", self.allowed.join(", "), campaign.join(", "))
            };
            return Err(Refusal::Destination { number: number.to_string(), allowed });
        }
        if !self.allow_premium {
            let parsed = phonenumber::parse(None, number).map_err(|_| Refusal::Invalid { number: number.to_string() })?;
            if let Some(kind) = toll_kind(parsed.number_type(&DATABASE)) {
                return Err(Refusal::Premium { number: number.to_string(), kind });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Guard {
        Guard::from_config(&pacer_config::DialerConfig::default()).unwrap()
    }

    #[test]
    fn the_default_is_the_home_country() {
        assert_eq!(us().allowed(), ["+1"]);
        assert_eq!(calling_code("gb").as_deref(), Some("+44"));
        assert_eq!(calling_code("XX"), None);
        let gb = pacer_config::DialerConfig { default_country: "GB".into(), ..Default::default() };
        assert_eq!(Guard::from_config(&gb).unwrap().allowed(), ["+44"]);
    }

    #[test]
    fn home_numbers_pass() {
        let g = us();
        for n in ["+12125550101", "+14155552671", "+18005550100"] {
            assert_eq!(g.check(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn international_numbers_are_refused() {
        let g = us();
        for n in ["+442079460958", "+33142685300", "+882123456789"] {
            let e = g.check(n).unwrap_err();
            assert_eq!(e.label(), "destination", "{n}");
            assert!(e.to_string().contains("outside the allowed destinations (+1)"), "{e}");
        }
        let two = Guard::new(vec!["+1".into(), "+44".into()], false);
        assert_eq!(two.check("+442079460958"), Ok(()));
        assert!(two.check("+33142685300").is_err());
    }

    #[test]
    fn premium_and_shared_cost_numbers_are_refused() {
        let g = Guard::new(vec!["+1".into(), "+44".into(), "+33".into()], false);
        for (n, kind) in [("+19002345678", "premium-rate"), ("+449012345678", "premium-rate"), ("+448431234567", "premium-rate"), ("+33884012345", "shared-cost"), ("+447012345678", "personal")] {
            match g.check(n) {
                Err(Refusal::Premium { kind: k, .. }) => assert_eq!(k, kind, "{n}"),
                other => panic!("{n}: {other:?}"),
            }
        }
        // Freephone costs the caller nothing.
        assert_eq!(g.check("+448001234567"), Ok(()));
    }

    #[test]
    fn the_switch_allows_premium_numbers() {
        let g = Guard::new(vec!["+1".into()], true);
        assert_eq!(g.check("+19002345678"), Ok(()));
        // It does not open international destinations.
        assert_eq!(g.check("+449098765432").unwrap_err().label(), "destination");
    }

    #[test]
    fn a_campaign_can_only_narrow() {
        let g = us();
        let nyc = ["+1212".to_string()];
        assert_eq!(g.check_for("+12125550101", &nyc), Ok(()));
        let e = g.check_for("+14155552671", &nyc).unwrap_err();
        assert!(e.to_string().contains("narrowed by the campaign to +1212"), "{e}");
        // A campaign prefix outside the system's list opens nothing.
        assert_eq!(g.check_for("+442079460958", &["+44".to_string()]).unwrap_err().label(), "destination");
        let asked = ["+1212".to_string(), "+44".to_string(), "+1".to_string(), "44".to_string()];
        let p = g.campaign_problems(&asked);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, 1);
        assert!(p[0].1.contains("+44 is outside dialer.allowed_destinations (+1)"), "{p:?}");
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(us().check("12125550101").unwrap_err().label(), "invalid");
        assert_eq!(us().check("+1 212").unwrap_err().label(), "invalid");
    }
}
