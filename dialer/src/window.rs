//! Calling windows, evaluated in the called party's local time.
//!
//! Pure functions of (settings, zone, instant): no clock is read here, so the hopper, the
//! tests and the simulator all ask the same question the same way. A campaign's windows
//! are clipped by the system legal window (`dialer.legal_window_*`), which no campaign can
//! widen. A lead whose zone is unknown is dialled only when every zone the campaign covers
//! is open, because we cannot know which of them the called party lives in.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A campaign's calling windows as stored in its settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallingWindows {
    /// `mon`..`sun` → windows like `"09:30-11:30"`. Empty map: every day, legal window only.
    /// With a map, a day that is not listed is closed.
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Dates (`YYYY-MM-DD`, the called party's local date) with no calls.
    pub holidays: Vec<String>,
    /// Extra IANA zones the campaign covers (beside those of its leads), used for leads
    /// whose own zone is unknown.
    pub zones: Vec<String>,
}

/// Problems with windows settings, as (field, reason).
pub fn problems(w: &CallingWindows) -> Vec<(String, String)> {
    let mut p = Vec::new();
    for (day, list) in &w.weekly {
        if !DAYS.contains(&day.as_str()) {
            p.push((format!("weekly.{day}"), "is not one of mon, tue, wed, thu, fri, sat, sun".into()));
            continue;
        }
        for (i, s) in list.iter().enumerate() {
            if let Err(e) = parse_range(s) {
                p.push((format!("weekly.{day}[{i}]"), e));
            }
        }
    }
    for (i, d) in w.holidays.iter().enumerate() {
        if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
            p.push((format!("holidays[{i}]"), format!("{d:?} is not a date YYYY-MM-DD")));
        }
    }
    for (i, z) in w.zones.iter().enumerate() {
        if z.parse::<Tz>().is_err() {
            p.push((format!("zones[{i}]"), format!("{z:?} is not an IANA time zone")));
        }
    }
    p
}

/// `HH:MM` → seconds since midnight; `24:00` is allowed as an end.
pub fn parse_hhmm(s: &str) -> Result<u32, String> {
    let (h, m) = s.trim().split_once(':').ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?, m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 3600 + m * 60)
}

fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("{s:?} is not HH:MM-HH:MM"))?;
    let (a, b) = (parse_hhmm(a)?, parse_hhmm(b)?);
    if a >= b {
        return Err(format!("{s:?} ends before it starts"));
    }
    Ok((a, b))
}

/// Compiled windows: ready to answer "may we call now?" many times a second.
#[derive(Debug, Clone)]
pub struct WindowPolicy {
    /// Monday first; seconds-of-day ranges, already clipped to the legal window.
    days: [Vec<(u32, u32)>; 7],
    holidays: HashSet<NaiveDate>,
}

impl WindowPolicy {
    /// Compile `w` under the legal window `legal_start`..`legal_end` (`HH:MM`).
    pub fn new(w: &CallingWindows, legal_start: &str, legal_end: &str) -> Result<WindowPolicy, String> {
        let legal = (parse_hhmm(legal_start)?, parse_hhmm(legal_end)?);
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for (i, day) in DAYS.iter().enumerate() {
            let ranges = if w.weekly.is_empty() {
                vec![(0, 24 * 3600)]
            } else {
                w.weekly.get(*day).map(|l| l.iter().map(|s| parse_range(s)).collect::<Result<Vec<_>, _>>()).transpose()?.unwrap_or_default()
            };
            days[i] = ranges.into_iter().map(|(a, b)| (a.max(legal.0), b.min(legal.1))).filter(|(a, b)| a < b).collect();
        }
        let holidays = w.holidays.iter().map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| format!("holiday {d:?}"))).collect::<Result<_, _>>()?;
        Ok(WindowPolicy { days, holidays })
    }

    /// True when a call to someone in `zone` may be placed at `at`.
    pub fn open_in(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&zone);
        if self.holidays.contains(&local.date_naive()) {
            return false;
        }
        let t = local.num_seconds_from_midnight();
        self.days[local.weekday().num_days_from_monday() as usize].iter().any(|&(a, b)| a <= t && t < b)
    }

    /// For a lead in `zone` (or unknown): an unknown zone needs every covered zone open,
    /// and with nothing covered it is never dialled (there is no safe guess).
    pub fn open_for(&self, zone: Option<Tz>, covered: &[Tz], at: DateTime<Utc>) -> bool {
        match zone {
            Some(z) => self.open_in(z, at),
            None => !covered.is_empty() && covered.iter().all(|z| self.open_in(*z, at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn policy(weekly: &[(&str, &[&str])], holidays: &[&str]) -> WindowPolicy {
        let w = CallingWindows {
            weekly: weekly.iter().map(|(d, l)| (d.to_string(), l.iter().map(|s| s.to_string()).collect())).collect(),
            holidays: holidays.iter().map(|s| s.to_string()).collect(),
            zones: vec![],
        };
        assert!(problems(&w).is_empty(), "{:?}", problems(&w));
        WindowPolicy::new(&w, "08:00", "21:00").unwrap()
    }

    const NY: Tz = chrono_tz::America::New_York;
    const LA: Tz = chrono_tz::America::Los_Angeles;
    const LON: Tz = chrono_tz::Europe::London;
    const SYD: Tz = chrono_tz::Australia::Sydney;

    #[test]
    fn several_windows_a_day_in_three_zones() {
        // Wednesday 2025-01-15.
        let p = policy(&[("wed", &["09:30-11:30", "14:30-16:40"])], &[]);
        // 15:00 UTC = 10:00 New York (open), 07:00 Los Angeles (closed), 15:00 London (open).
        let at = utc(2025, 1, 15, 15, 0);
        assert!(p.open_in(NY, at));
        assert!(!p.open_in(LA, at));
        assert!(p.open_in(LON, at));
        // 12:00 local in New York falls in the gap between windows.
        assert!(!p.open_in(NY, utc(2025, 1, 15, 17, 0)));
        // Edges: start inclusive, end exclusive.
        assert!(p.open_in(LON, utc(2025, 1, 15, 9, 30)));
        assert!(!p.open_in(LON, utc(2025, 1, 15, 16, 40)));
        // Thursday is not listed: closed.
        assert!(!p.open_in(LON, utc(2025, 1, 16, 10, 0)));
        // Sydney: Thursday 10:00 local is Wednesday 23:00 UTC; Thursday is closed there.
        assert!(!p.open_in(SYD, utc(2025, 1, 15, 23, 0)));
        // Sydney Wednesday 10:00 local = Tuesday 23:00 UTC.
        assert!(p.open_in(SYD, utc(2025, 1, 14, 23, 0)));
    }

    #[test]
    fn legal_window_clips_campaign_windows() {
        let p = policy(&[("mon", &["06:00-23:00"])], &[]);
        // Monday 2025-01-13, London = UTC in winter.
        assert!(!p.open_in(LON, utc(2025, 1, 13, 7, 59)));
        assert!(p.open_in(LON, utc(2025, 1, 13, 8, 0)));
        assert!(p.open_in(LON, utc(2025, 1, 13, 20, 59)));
        assert!(!p.open_in(LON, utc(2025, 1, 13, 21, 0)));
        // No weekly map at all: the legal window every day.
        let all = policy(&[], &[]);
        assert!(all.open_in(LON, utc(2025, 1, 18, 12, 0)));
        assert!(!all.open_in(LON, utc(2025, 1, 18, 22, 0)));
    }

    #[test]
    fn dst_change_moves_the_window_in_utc() {
        // New York springs forward on Sunday 2025-03-09. 08:30 local is 13:30 UTC the
        // Saturday before and 12:30 UTC the Monday after.
        let p = policy(&[("sat", &["08:30-12:00"]), ("mon", &["08:30-12:00"])], &[]);
        assert!(p.open_in(NY, utc(2025, 3, 8, 13, 30)));
        assert!(!p.open_in(NY, utc(2025, 3, 8, 12, 45)));
        assert!(p.open_in(NY, utc(2025, 3, 10, 12, 30)));
        assert!(!p.open_in(NY, utc(2025, 3, 10, 16, 0))); // 12:00 EDT: closed
        // London falls back on 2025-10-26: 08:00 local is 07:00 UTC on Saturday the 25th,
        // 08:00 UTC on Monday the 27th.
        assert!(!p.open_in(LON, utc(2025, 10, 25, 6, 59)));
        assert!(p.open_in(LON, utc(2025, 10, 25, 7, 30)));
        assert!(!p.open_in(LON, utc(2025, 10, 27, 7, 30)));
        assert!(p.open_in(LON, utc(2025, 10, 27, 8, 30)));
    }

    #[test]
    fn holidays_use_the_local_date() {
        let p = policy(&[], &["2025-12-25"]);
        // 2025-12-25 10:00 in London, while Los Angeles is still on the 24th at 02:00 (closed
        // by the legal window anyway) and is on the 25th by 18:00 UTC.
        assert!(!p.open_in(LON, utc(2025, 12, 25, 10, 0)));
        assert!(p.open_in(LA, utc(2025, 12, 24, 18, 0)));
        assert!(!p.open_in(LA, utc(2025, 12, 25, 18, 0)));
    }

    #[test]
    fn unknown_zone_needs_every_covered_zone_open() {
        let p = policy(&[], &[]);
        let covered = [NY, LA];
        // 13:00 UTC in July: 09:00 New York, 06:00 Los Angeles → not for unknown leads.
        assert!(!p.open_for(None, &covered, utc(2025, 7, 1, 13, 0)));
        // 17:00 UTC: 13:00 New York, 10:00 Los Angeles → open.
        assert!(p.open_for(None, &covered, utc(2025, 7, 1, 17, 0)));
        assert!(p.open_for(Some(NY), &covered, utc(2025, 7, 1, 13, 0)));
        assert!(!p.open_for(None, &[], utc(2025, 7, 1, 17, 0)));
    }

    #[test]
    fn bad_windows_are_named() {
        let w = CallingWindows {
            weekly: [("funday".to_string(), vec![]), ("tue".to_string(), vec!["9-10".into(), "10:00-25:00".into()])].into_iter().collect(),
            holidays: vec!["25/12/2025".into()],
            zones: vec!["Mars/Olympus".into()],
        };
        let fields: Vec<String> = problems(&w).into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["weekly.funday", "weekly.tue[0]", "weekly.tue[1]", "holidays[0]", "zones[0]"]);
    }
}
