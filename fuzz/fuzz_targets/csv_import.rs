//! Any bytes as a CSV file imported into a list (SQLite in memory): never a panic, and the
//! report adds up (every data row is imported, a duplicate, on DNC or rejected).
#![no_main]
use std::sync::LazyLock;

use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::store::{Store, StoreOptions};

struct Env {
    rt: tokio::runtime::Runtime,
    store: Store,
    list: i64,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (store, list) = rt.block_on(async {
        let store = Store::connect("sqlite::memory:", &StoreOptions { max_connections: 1, ..StoreOptions::default() }).await.unwrap();
        store.migrate().await.unwrap();
        let c = store
            .create_campaign(&pacer_dialer::store::NewCampaign { name: "fuzz".into(), dial_mode: pacer_dialer::store::DialMode::Progressive, settings: Default::default() })
            .await
            .unwrap();
        let list = store.create_list(c.id, "fuzz", 0).await.unwrap().id;
        (store, list)
    });
    Env { rt, store, list }
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let env = &*ENV;
    let opts = ImportOptions { mapping: Mapping::default(), default_country: "US".into() };
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(r) = env.rt.block_on(import_csv(&env.store, env.list, input, opts)) {
        assert!(r.rejected.len() as u64 <= r.rejected_total, "{r:?}");
    }
});
