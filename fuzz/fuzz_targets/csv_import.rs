//! Any bytes as a CSV file imported into a list (SQLite in memory): never a panic, and the
//! report adds up. The database is made anew every 500 inputs, so that the fuzzer measures
//! the import and not an ever-growing table (a first harness grew past libFuzzer's memory
//! limit after ten minutes).
#![no_main]
use std::sync::{LazyLock, Mutex};

use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::store::{Store, StoreOptions};

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap());
static DB: Mutex<Option<(Store, i64, u32)>> = Mutex::new(None);

async fn fresh() -> (Store, i64) {
    let store = Store::connect("sqlite::memory:", &StoreOptions { max_connections: 1, ..StoreOptions::default() }).await.unwrap();
    store.migrate().await.unwrap();
    let c = store
        .create_campaign(&pacer_dialer::store::NewCampaign { name: "fuzz".into(), dial_mode: pacer_dialer::store::DialMode::Progressive, settings: Default::default() })
        .await
        .unwrap();
    let list = store.create_list(c.id, "fuzz", 0).await.unwrap().id;
    (store, list)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut db = DB.lock().unwrap();
    if db.as_ref().is_none_or(|d| d.2 >= 500) {
        if let Some((old, _, _)) = db.take() {
            RT.block_on(old.close());
        }
        let (s, l) = RT.block_on(fresh());
        *db = Some((s, l, 0));
    }
    let (store, list, n) = db.as_mut().unwrap();
    *n += 1;
    let opts = ImportOptions { mapping: Mapping::default(), default_country: "US".into() };
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(r) = RT.block_on(import_csv(store, *list, input, opts)) {
        assert!(r.rejected.len() as u64 <= r.rejected_total, "{r:?}");
    }
});
