//! Phone numbers: E.164 normalisation and the called party's time zone.
//!
//! Parsing and validation use the `phonenumber` crate (libphonenumber's metadata). The time
//! zone is derived from the number's region through the IANA database's `zone.tab`
//! (installed with the system's tzdata): a region with exactly one zone gets it. A region
//! with several zones (US, CA, AU, RU, BR, MX…) stays unknown: neither crate carries
//! libphonenumber's area-code → zone data, and a wrong guess would break calling windows.
//! Unknown zones are handled safely by [`crate::window::WindowPolicy::open_for`].

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;

use chrono_tz::Tz;
use phonenumber::country;

/// Where the system's tzdata keeps the country → zone table.
const ZONE_TAB: &str = "/usr/share/zoneinfo/zone.tab";

/// Normalises numbers for one default country.
#[derive(Debug, Clone)]
pub struct Normalizer {
    default: country::Id,
}

/// A number in E.164 with the region it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub e164: String,
    /// ISO 3166 alpha-2 region, when the metadata names one.
    pub region: Option<String>,
}

impl Normalizer {
    /// `default_country` is an ISO 3166 alpha-2 code such as `US` or `GB`.
    pub fn new(default_country: &str) -> Result<Normalizer, String> {
        let default = country::Id::from_str(&default_country.to_ascii_uppercase())
            .map_err(|_| format!("{default_country:?} is not a country code (ISO 3166 alpha-2)"))?;
        Ok(Normalizer { default })
    }

    /// The number in E.164, or why it is not a number we can dial.
    pub fn normalize(&self, raw: &str) -> Result<Normalized, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("phone number is empty".into());
        }
        // A leading 00 is the international prefix in most of the world.
        let owned;
        let text = if let Some(rest) = raw.strip_prefix("00") {
            owned = format!("+{rest}");
            owned.as_str()
        } else {
            raw
        };
        // An international number is parsed without the default country: with one, the
        // crate strips that country's national prefix from it (`+33 1 42…` with US loses
        // its `1`).
        // Whatever comes before the first digit or `+` (a `tel:` label, stray control
        // characters) does not hide the `+` (found by fuzzing: `\0+78 44024020 0`).
        let international = text.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '+').starts_with('+');
        let default = if international { None } else { Some(self.default) };
        let n = phonenumber::parse(default, text).map_err(|e| format!("{raw:?} is not a phone number ({e})"))?;
        // `phonenumber::is_valid` picks the region by the number's leading digits (+39 06 698
        // is the Vatican's, the rest of +39 06 Italy's) and reads the national number with
        // its leading zeros: a shortcut that did neither let `-++490 04r13(50` through as
        // +4900471350, which is not what it reads back as (found by fuzzing).
        if !phonenumber::is_valid(&n) {
            return Err(format!("{raw:?} is not a valid number"));
        }
        let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
        // The E.164 form must read back as itself: with a default country the crate can
        // read stray digits and letters into a number whose E.164 form is not valid
        // (found by fuzzing: `(0/0) 550900z471---200` with GB). Such input is refused.
        // Validity depends only on the country code and the national number: when the
        // E.164 form reads back as the same two, it is as valid as `n` and formats the
        // same, and the second validation (the costliest step, about a third of the time
        // per number) is skipped.
        let reads_back = match phonenumber::parse(None, &e164) {
            Ok(b) if b.country().code() == n.country().code() && b.national() == n.national() => true,
            Ok(b) => phonenumber::is_valid(&b) && b.format().mode(phonenumber::Mode::E164).to_string() == e164,
            Err(_) => false,
        };
        if !reads_back {
            return Err(format!("{raw:?} is not a valid number"));
        }
        let region = n.country().id().map(|i| i.as_ref().to_string()).filter(|id| id.len() == 2);
        Ok(Normalized { e164, region })
    }
}

fn zone_table() -> &'static HashMap<String, Vec<String>> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text = std::fs::read_to_string(ZONE_TAB).unwrap_or_else(|e| {
            tracing::warn!(path = ZONE_TAB, error = %e, "no zone table: time zones are not derived from numbers");
            String::new()
        });
        parse_zone_tab(&text)
    })
}

/// `zone.tab`: `CC<TAB>coordinates<TAB>Zone[<TAB>comment]`, `#` comments.
fn parse_zone_tab(text: &str) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split('\t');
        if let (Some(cc), Some(_), Some(zone)) = (f.next(), f.next(), f.next()) {
            map.entry(cc.to_string()).or_default().push(zone.to_string());
        }
    }
    map
}

/// The zone of a region when the region has exactly one (per the IANA database).
pub fn zone_for_region(region: &str) -> Option<Tz> {
    match zone_table().get(region)?.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    }
}

/// Every zone a region spans (empty when unknown).
pub fn zones_of_region(region: &str) -> Vec<Tz> {
    zone_table().get(region).map(|z| z.iter().filter_map(|s| s.parse().ok()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_e164() {
        let us = Normalizer::new("us").unwrap();
        assert_eq!(us.normalize("(415) 555-2671").unwrap().e164, "+14155552671");
        assert_eq!(us.normalize("+44 20 7946 0958").unwrap(), Normalized { e164: "+442079460958".into(), region: Some("GB".into()) });
        assert_eq!(us.normalize("0044 20 7946 0958").unwrap().e164, "+442079460958");
        let gb = Normalizer::new("GB").unwrap();
        assert_eq!(gb.normalize("020 7946 0958").unwrap().e164, "+442079460958");
        assert!(us.normalize("").unwrap_err().contains("empty"));
        assert!(us.normalize("hello").is_err());
        assert!(us.normalize("123").is_err());
        assert!(Normalizer::new("XX").is_err());
    }

    #[test]
    fn leading_zeros_count_where_they_are_dialled() {
        let n = Normalizer::new("US").unwrap();
        // Italy keeps the leading 0 in international format; Germany does not.
        assert_eq!(n.normalize("+39 06 6988 4000").unwrap().e164, "+390669884000");
        // Inputs found by fuzzing: whatever they normalise to normalises to itself.
        for raw in ["-++490 04r13(50", "\r\0+78 44024020 0"] {
            if let Ok(x) = n.normalize(raw) {
                assert_eq!(n.normalize(&x.e164).map(|y| y.e164), Ok(x.e164.clone()), "{raw:?}");
            }
        }
        assert_eq!(n.normalize("tel: +44 20 7946 0018").unwrap().e164, "+442079460018");
        // Plain digits need the read-back too: in Lithuania `080812345` parses (national
        // prefix 0) to +37080812345, which reads back with its 8 taken as the prefix.
        assert!(Normalizer::new("LT").unwrap().normalize("080812345").is_err());
        // What normalises is E.164 and normalises to itself.
        for raw in ["+1 212 555 0100", "(212) 555-0100", "+44 20 7946 0018", "+39 06 6988 4000"] {
            let e = n.normalize(raw).unwrap().e164;
            assert_eq!(n.normalize(&e).unwrap().e164, e, "{raw}");
        }
    }

    #[test]
    fn validity_agrees_with_the_crate() {
        let us = Normalizer::new("US").unwrap();
        for raw in ["+14155552671", "+1 800 555 0100", "+1 900 555 0100", "+44 7911 123456", "+44 20 7946 0958", "+1 787 555 0100", "+33 1 42 68 53 00", "+1 555 555 0100", "+44 20 0000 0000", "+800 1234 5678", "+1 212 000 0000", "+49 30 123456", "+39 06 6988 4000", "+39 06 6982 1234", "+39 347 123 4567"] {
            let crate_says = phonenumber::parse(None, raw).map(|n| (phonenumber::is_valid(&n), n.country().id().map(|i| i.as_ref().to_string()))).unwrap();
            let ours = us.normalize(raw);
            assert_eq!(ours.is_ok(), crate_says.0, "{raw}");
            if let Ok(n) = ours {
                assert_eq!(n.region, crate_says.1, "{raw}");
            }
        }
    }

    /// Every region's example numbers (libphonenumber's metadata) normalise, with that
    /// region as the default country and in international form, to one E.164 number of
    /// that region. This also compiles and runs most of the metadata's patterns once, as an
    /// import of a worldwide list would.
    #[test]
    fn every_regions_example_numbers_normalise() {
        use phonenumber::metadata::DATABASE;
        let mut checked = 0;
        for meta in DATABASE.iter().filter(|m| m.id().len() == 2 && m.id() != "001") {
            let local = Normalizer::new(meta.id()).unwrap();
            let d = meta.descriptors();
            for example in [d.fixed_line(), d.mobile(), d.toll_free()].into_iter().flatten().filter_map(|x| x.example()) {
                let Ok(national) = local.normalize(example) else { continue };
                let intl = local.normalize(&format!("+{} {example}", meta.country_code())).unwrap_or_else(|e| panic!("{}: {e}", meta.id()));
                assert_eq!(intl.e164, national.e164, "{} {example}", meta.id());
                assert_eq!(local.normalize(&national.e164).unwrap(), national, "{} {example}", meta.id());
                checked += 1;
            }
        }
        assert!(checked > 400, "{checked} example numbers");
    }

    #[test]
    fn zones_come_from_the_region() {
        let t = parse_zone_tab("# c\nGB\t+513030-0000731\tEurope/London\nUS\t+1\tAmerica/New_York\nUS\t+2\tAmerica/Chicago\tCentral\n");
        assert_eq!(t["GB"], ["Europe/London"]);
        assert_eq!(t["US"].len(), 2);
        if zone_table().is_empty() {
            eprintln!("note: {ZONE_TAB} missing; derived-zone checks skipped");
            return;
        }
        assert_eq!(zone_for_region("GB"), Some(chrono_tz::Europe::London));
        assert_eq!(zone_for_region("FR"), Some(chrono_tz::Europe::Paris));
        assert_eq!(zone_for_region("US"), None);
        assert!(zones_of_region("US").len() > 5);
    }
}
