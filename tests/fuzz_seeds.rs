//! The fuzz targets' checked-in seeds (fuzz/corpus/) through the same functions as the
//! fuzzers (scripts/fuzz), so that every test run covers them on stable Rust.

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| (e.path(), std::fs::read(e.path()).unwrap())).collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn config_and_scenario_seeds_parse_or_fail_cleanly() {
    for (p, b) in seeds("config_toml") {
        let r = pacer_config::Config::from_toml_str(std::str::from_utf8(&b).unwrap());
        if p.ends_with("bad.toml") {
            assert!(r.is_err(), "{}", p.display());
        }
    }
    for (p, b) in seeds("scenario_toml") {
        assert!(pacer_dialer::sim::Scenario::from_toml(std::str::from_utf8(&b).unwrap()).is_ok(), "{}", p.display());
    }
}

#[test]
fn filter_and_phone_seeds() {
    for (p, b) in seeds("lead_filter") {
        let Ok(text) = std::str::from_utf8(&b) else { continue };
        let _ = pacer_dialer::filter::Filter::parse(text).map_err(|e| format!("{}: {e:?}", p.display()));
    }
    for country in ["US", "GB"] {
        let norm = pacer_dialer::phone::Normalizer::new(country).unwrap();
        for (_, b) in seeds("phone_number") {
            let Ok(text) = std::str::from_utf8(&b) else { continue };
            if let Ok(n) = norm.normalize(text) {
                assert_eq!(norm.normalize(&n.e164).map(|x| x.e164).ok(), Some(n.e164.clone()), "{country} {text:?}");
            }
        }
    }
}

#[tokio::test]
async fn csv_and_sdp_seeds() {
    use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
    use pacer_dialer::store::{DialMode, NewCampaign, Store, StoreOptions};
    let store = Store::connect("sqlite::memory:", &StoreOptions { max_connections: 1, ..StoreOptions::default() }).await.unwrap();
    store.migrate().await.unwrap();
    let c = store.create_campaign(&NewCampaign { name: "seeds".into(), dial_mode: DialMode::Progressive, settings: Default::default() }).await.unwrap();
    let list = store.create_list(c.id, "seeds", 0).await.unwrap().id;
    let mut imported = 0;
    for (_, b) in seeds("csv_import") {
        let opts = ImportOptions { mapping: Mapping::default(), default_country: "US".into() };
        imported += import_csv(&store, list, std::io::Cursor::new(b), opts).await.unwrap().imported;
    }
    assert!(imported >= 3, "{imported}");
    let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 52000, rtp_port_max: 52998, ..Default::default() }).unwrap();
    let leg = media.rtp_endpoint().await.unwrap();
    for (p, b) in seeds("sdp_offer") {
        assert!(leg.answer_offer(std::str::from_utf8(&b).unwrap()).is_ok(), "{}", p.display());
    }
}
