//! Choosing the caller ID for one call: one number, a pool rotated per call, or "local
//! presence" (the pool number that shares the called party's area code).
//!
//! The area code is the first group of the number's international format, as
//! libphonenumber's metadata (through the `phonenumber` crate) writes it: `415` in
//! `+1 415-555-2671`, `20` in `+44 20 7946 0958`. No hand table is involved.
//!
//! Rotation is driven by a sequence number the caller supplies (the hopper uses
//! `lead id + attempts`), so every node picks the same way without sharing a counter, and
//! successive calls — of one lead or of neighbouring leads — get different numbers.

use crate::settings::{CallerId, CallerIdMode};

/// `(country calling code, area code)` of an E.164 number, when it parses.
pub fn area_code(e164: &str) -> Option<(u16, String)> {
    let n = phonenumber::parse(None, e164).ok()?;
    let intl = n.format().mode(phonenumber::Mode::International).to_string();
    let mut groups = intl.split([' ', '-']).filter(|g| !g.is_empty());
    let _country = groups.next()?;
    let area = groups.next()?;
    Some((n.code().value(), area.to_string()))
}

/// A campaign's caller-ID rule, with the pool's area codes worked out once.
#[derive(Debug, Clone)]
pub struct CallerIdPicker {
    mode: CallerIdMode,
    numbers: Vec<String>,
    areas: Vec<Option<(u16, String)>>,
}

impl CallerIdPicker {
    pub fn new(c: &CallerId) -> CallerIdPicker {
        let areas = match c.mode {
            CallerIdMode::LocalPresence => c.numbers.iter().map(|n| area_code(n)).collect(),
            _ => Vec::new(),
        };
        CallerIdPicker { mode: c.mode, numbers: c.numbers.clone(), areas }
    }

    /// The number to present when calling `called` (E.164); `seq` rotates the pool. `None`
    /// when the campaign sets no number (the trunk's default caller ID applies).
    pub fn pick(&self, called: &str, seq: u64) -> Option<&str> {
        if self.numbers.is_empty() {
            return None;
        }
        let rotate = |candidates: &[usize]| candidates.get((seq % candidates.len() as u64) as usize).map(|&i| self.numbers[i].as_str());
        match self.mode {
            CallerIdMode::One => Some(self.numbers[0].as_str()),
            CallerIdMode::Pool => rotate(&(0..self.numbers.len()).collect::<Vec<_>>()),
            CallerIdMode::LocalPresence => {
                let want = area_code(called);
                let same = |f: &dyn Fn(&(u16, String)) -> bool| -> Vec<usize> {
                    self.areas.iter().enumerate().filter(|(_, a)| a.as_ref().is_some_and(f)).map(|(i, _)| i).collect()
                };
                // Same area code, else the same country, else the whole pool.
                let local = want.as_ref().map(|w| same(&|a| a == w)).unwrap_or_default();
                let national = want.as_ref().map(|w| same(&|a| a.0 == w.0)).unwrap_or_default();
                for candidates in [local, national] {
                    if !candidates.is_empty() {
                        return rotate(&candidates);
                    }
                }
                rotate(&(0..self.numbers.len()).collect::<Vec<_>>())
            }
        }
    }
}

impl crate::settings::CampaignSettings {
    /// The caller ID for one call to `called` (see [`CallerIdPicker`]; build one picker per
    /// campaign when choosing for many calls).
    pub fn caller_id_for(&self, called: &str, seq: u64) -> Option<String> {
        CallerIdPicker::new(&self.caller_id).pick(called, seq).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(mode: CallerIdMode, numbers: &[&str]) -> CallerIdPicker {
        CallerIdPicker::new(&CallerId { mode, numbers: numbers.iter().map(|s| s.to_string()).collect() })
    }

    #[test]
    fn area_codes_come_from_the_metadata() {
        assert_eq!(area_code("+14155552671"), Some((1, "415".into())));
        assert_eq!(area_code("+442079460958"), Some((44, "20".into())));
        assert_eq!(area_code("+33142685300"), Some((33, "1".into())));
        assert_eq!(area_code("nonsense"), None);
    }

    #[test]
    fn one_number_and_none() {
        assert_eq!(ids(CallerIdMode::One, &["+14155550000"]).pick("+12125550101", 7), Some("+14155550000"));
        assert_eq!(ids(CallerIdMode::One, &[]).pick("+12125550101", 7), None);
    }

    #[test]
    fn a_pool_rotates_per_call() {
        let p = ids(CallerIdMode::Pool, &["+14155550001", "+14155550002", "+14155550003"]);
        let picked: Vec<&str> = (0..4).map(|seq| p.pick("+12125550101", seq).unwrap()).collect();
        assert_eq!(picked, ["+14155550001", "+14155550002", "+14155550003", "+14155550001"]);
    }

    #[test]
    fn local_presence_matches_the_area_code_then_the_country() {
        let p = ids(CallerIdMode::LocalPresence, &["+14155550001", "+12125550002", "+12125550003", "+442079460004"]);
        // New York (212): the two 212 numbers, rotating.
        assert_eq!(p.pick("+12125559999", 0), Some("+12125550002"));
        assert_eq!(p.pick("+12125559999", 1), Some("+12125550003"));
        // San Francisco (415).
        assert_eq!(p.pick("+14155559999", 5), Some("+14155550001"));
        // Chicago (312): no local number; a US one.
        let chicago = p.pick("+13125559999", 2).unwrap();
        assert!(chicago.starts_with("+1"), "{chicago}");
        // London.
        assert_eq!(p.pick("+442079469999", 3), Some("+442079460004"));
        // Paris: no French number; any of the pool.
        assert!(p.pick("+33142685300", 0).is_some());
        let s = crate::settings::CampaignSettings { caller_id: CallerId { mode: CallerIdMode::LocalPresence, numbers: vec!["+14155550001".into()] }, ..Default::default() };
        assert_eq!(s.caller_id_for("+14155559999", 9).as_deref(), Some("+14155550001"));
    }
}
