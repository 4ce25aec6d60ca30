//! CSV import on SQLite and PostgreSQL: bad rows, duplicates, DNC, encodings, zones.

use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::lead_state::LeadState;
use pacer_dialer::store::{DialMode, LeadQuery, NewCampaign, Store};
use pacer_dialer::test_support::TestDb;

fn opts() -> ImportOptions {
    ImportOptions { mapping: Mapping::default(), default_country: "US".into() }
}

async fn campaign(s: &Store, name: &str) -> i64 {
    s.create_campaign(&NewCampaign { name: name.into(), dial_mode: DialMode::Predictive, settings: Default::default() }).await.unwrap().id
}

#[tokio::test]
async fn bad_rows_are_rejected_with_their_line_and_the_rest_imports() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = campaign(s, "C").await;
        let list = s.create_list(c, "L1", 0).await.unwrap();
        // BOM, semicolons, a quoted field holding the separator and a newline (so the line
        // numbers after it shift by one), a blank line, bad rows of several kinds.
        let csv = "\u{feff}phone;name;tz;balance\n\
                   (415) 555-2671;Ann;America/Los_Angeles;10\n\
                   not a number;Bob;;5\n\
                   212-555-0100;\"Smith; John\nJr\";;7\n\
                   \n\
                   312 555 0199;Cat;Mars/Base;1\n\
                   +44 20 7946 0958;Dee;;3\n\
                   415.555.2671;Ann again;;10\n\
                   646 555 0143;Short\n\
                   ;Nobody;;0\n";
        let report = import_csv(s, list.id, std::io::Cursor::new(csv.as_bytes().to_vec()), opts()).await.unwrap();
        assert_eq!(report.imported, 3, "{report:?}");
        assert_eq!(report.duplicates, 1);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 7, 10, 11], "{report:?}");
        assert!(report.rejected[1].reason.contains("Mars/Base"));
        assert!(report.rejected[2].reason.contains("expected 4 fields"));
        assert!(report.rejected[3].reason.contains("empty"));
        assert_eq!(report.rejected_total, 4);

        let leads = s.search_leads(&LeadQuery { list_id: Some(list.id), ..Default::default() }).await.unwrap();
        assert_eq!(leads.len(), 3);
        assert_eq!(leads[0].phone, "+14155552671");
        assert_eq!(leads[0].time_zone.as_deref(), Some("America/Los_Angeles"));
        assert_eq!(leads[0].fields["balance"], "10");
        assert_eq!(leads[0].state, LeadState::New);
        assert_eq!(leads[1].name, "Smith; John\nJr");
        assert_eq!(leads[1].time_zone, None, "a US number without a zone column stays unknown");
        if !pacer_dialer::phone::zones_of_region("GB").is_empty() {
            assert_eq!(leads[2].time_zone.as_deref(), Some("Europe/London"));
        }
        // The campaign covers the zones of its leads, and every zone of the US for the US
        // lead whose zone is unknown: that lead waits until all of them are open.
        let zones = s.campaign_zones(c).await.unwrap();
        assert!(zones.contains(&"America/Los_Angeles".to_string()), "{zones:?}");
        let us = pacer_dialer::phone::zones_of_region("US");
        assert!(us.iter().all(|z| zones.contains(&z.name().to_string())), "{zones:?}");
        assert!(!zones.iter().any(|z| z.starts_with("Asia/")), "{zones:?}");

        // Against the campaign's other lists: the same numbers in a second list are
        // duplicates; a number on the campaign's DNC list is not imported.
        s.add_dnc(c, &["+13125550199".to_string()], "asked").await.unwrap();
        let l2 = s.create_list(c, "L2", 5).await.unwrap();
        let csv2 = "phone,name\n4155552671,Ann\n3125550199,Cat\n6465550143,Eve\n";
        let r2 = import_csv(s, l2.id, std::io::Cursor::new(csv2.as_bytes().to_vec()), opts()).await.unwrap();
        assert_eq!((r2.imported, r2.duplicates, r2.dnc, r2.rejected_total), (1, 1, 1, 0), "{r2:?}");
        // Another campaign may hold the same number.
        let c2 = campaign(s, "Other").await;
        let l3 = s.create_list(c2, "L", 0).await.unwrap();
        let r3 = import_csv(s, l3.id, std::io::Cursor::new(csv2.as_bytes().to_vec()), opts()).await.unwrap();
        assert_eq!(r3.imported, 3);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn whole_file_problems_are_errors() {
    let db = TestDb::sqlite().await;
    let s = &db.store;
    let c = campaign(s, "C").await;
    let list = s.create_list(c, "L", 0).await.unwrap();
    let run = |text: &'static str, m: Mapping| {
        let o = ImportOptions { mapping: m, default_country: "US".into() };
        import_csv(s, list.id, std::io::Cursor::new(text.as_bytes()), o)
    };
    assert!(run("", Mapping::default()).await.unwrap_err().to_string().contains("empty"));
    assert!(run("name,zip\nA,1\n", Mapping::default()).await.unwrap_err().to_string().contains("no phone column"));
    let mut m = Mapping::default();
    m.add("phone=Cell").unwrap();
    assert!(run("phone\n1\n", m).await.unwrap_err().to_string().contains("Cell"));
    // Large batches cross the batch boundary and keep line numbers right.
    let mut big = String::from("phone,name\n");
    for i in 0..2500u32 {
        if i == 1700 {
            big.push_str("bogus,X\n");
        }
        big.push_str(&format!("+1415{:07},N{i}\n", 2000000 + i));
    }
    let text: &'static str = Box::leak(big.into_boxed_str());
    let r = run(text, Mapping::default()).await.unwrap();
    assert_eq!(r.imported, 2500);
    assert_eq!(r.rejected[0].line, 1702);
    db.cleanup().await;
}

/// A large import refreshes PostgreSQL's statistics, so that the hopper's claims of the new
/// leads are planned for what the table now holds (not read-all-and-sort).
#[tokio::test]
async fn a_large_import_refreshes_the_planner_statistics_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let s = &db.store;
    let c = campaign(s, "Big").await;
    let list = s.create_list(c, "L", 0).await.unwrap();
    let analyzed = || async {
        sqlx::query_scalar::<_, i64>("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'leads'").fetch_one(s.pool()).await.unwrap()
    };
    let before = analyzed().await;
    let mut csv = String::from("phone,name\n");
    for i in 0..1200 {
        csv.push_str(&format!("+1 415 {:03} {:04},Lead {i}\n", 202 + i / 1000, i % 1000));
    }
    let report = import_csv(s, list.id, std::io::Cursor::new(csv.into_bytes()), opts()).await.unwrap();
    assert_eq!(report.imported, 1200, "{report:?}");
    assert_eq!(analyzed().await, before + 1, "ANALYZE ran once after the import");
    db.cleanup().await;
}
