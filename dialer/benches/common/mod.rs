//! Shared by the data benchmarks: generated CSV, peak memory, a running campaign.

#![allow(dead_code)]

use std::io::Read;

use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::settings::CampaignSettings;
use pacer_dialer::store::{CampaignAction, DialMode, NewCampaign, Store};

/// Area codes of several US time zones, so generated numbers are valid and spread.
const AREAS: [(u32, &str); 8] = [
    (212, "America/New_York"),
    (305, "America/New_York"),
    (312, "America/Chicago"),
    (214, "America/Chicago"),
    (303, "America/Denver"),
    (415, "America/Los_Angeles"),
    (503, "America/Los_Angeles"),
    (808, "Pacific/Honolulu"),
];

/// `rows` CSV lines made on the fly (the file is never in memory): numbers in several
/// spellings, a zone on half of them, custom fields, and one bad row in a thousand.
pub struct GeneratedCsv {
    next: u64,
    rows: u64,
    buf: Vec<u8>,
    pos: usize,
    pub bytes: u64,
}

impl GeneratedCsv {
    pub fn new(rows: u64) -> GeneratedCsv {
        GeneratedCsv { next: 0, rows, buf: b"phone,name,tz,balance,contract_end\n".to_vec(), pos: 0, bytes: 0 }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        use std::fmt::Write as _;
        let mut line = String::with_capacity(96);
        while self.buf.len() < 1 << 16 && self.next < self.rows {
            let i = self.next;
            self.next += 1;
            line.clear();
            let (area, zone) = AREAS[(i % AREAS.len() as u64) as usize];
            let rest = i / AREAS.len() as u64;
            // Even exchanges 202..=980 (never an N11 service code); 10,000 lines each.
            let exchange = 202 + 2 * ((rest / 10_000) % 390);
            let subscriber = rest % 10_000;
            let zone = if i % 2 == 0 { zone } else { "" };
            if i % 1000 == 999 {
                let _ = write!(line, "not a number {i},Bad {i},,0,2026-01-01\n");
            } else {
                match i % 3 {
                    0 => write!(line, "({area}) {exchange}-{subscriber:04}"),
                    1 => write!(line, "+1 {area} {exchange} {subscriber:04}"),
                    _ => write!(line, "{area}.{exchange}.{subscriber:04}"),
                }
                .expect("write");
                let _ = write!(line, ",Lead {i},{zone},{}.{:02},2026-{:02}-{:02}\n", i % 500, i % 100, 1 + i % 12, 1 + i % 28);
            }
            self.buf.extend_from_slice(line.as_bytes());
        }
    }
}

impl Read for GeneratedCsv {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.refill();
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Resident memory now, in MiB.
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// A running campaign with one list of `rows` generated leads; returns (campaign, list).
pub async fn campaign_with_leads(store: &Store, name: &str, rows: u64) -> (i64, i64) {
    let c = store.create_campaign(&NewCampaign { name: name.into(), dial_mode: DialMode::Predictive, settings: CampaignSettings::default() }).await.expect("campaign");
    store.campaign_action(c.id, CampaignAction::Start).await.expect("start");
    let l = store.create_list(c.id, "L", 0).await.expect("list");
    import_csv(store, l.id, GeneratedCsv::new(rows), ImportOptions { mapping: Mapping::default(), default_country: "US".into() }).await.expect("import");
    (c.id, l.id)
}

/// A dialer config whose legal window is always open, so claims do not depend on the hour.
pub fn open_all_day() -> pacer_config::DialerConfig {
    pacer_config::DialerConfig { legal_window_start: "00:00".into(), legal_window_end: "24:00".into(), lease_s: 3600, ..Default::default() }
}

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
