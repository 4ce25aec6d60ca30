//! The web pages — agent desktop (`/agent`), supervisor floor (`/supervisor`) and a start
//! page (`/`) — embedded in the binary, so a deployment is one file.
//!
//! They are plain HTML, CSS and ES modules from `web/` with no build step: each file is
//! included at compile time and served with its content type. `no-cache` makes browsers
//! fetch them again on every load, so an upgraded server never runs an older page's
//! script (they are a few kilobytes).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;

/// One embedded file: its name under `web/`, its bytes and its content type.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    mime: &'static str,
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset { name: $name, body: include_bytes!(concat!("../web/", $name)), mime: $mime }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of `web/` (a test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("agent.html", HTML),
    asset!("supervisor.html", HTML),
    asset!("agent.js", JS),
    asset!("supervisor.js", JS),
    asset!("cti.js", JS),
    asset!("style.css", CSS),
];

/// `/`, `/agent`, `/supervisor`, and `/web/{file}` for the pages' scripts and styles.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/agent", get(|| async { serve("agent.html") }))
        .route("/supervisor", get(|| async { serve("supervisor.html") }))
        .route("/web/{file}", get(|Path(file): Path<String>| async move { serve(&file) }))
}

fn serve(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => ([(header::CONTENT_TYPE, a.mime), (header::CACHE_CONTROL, "no-cache"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], a.body).into_response(),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, HTML)], format!("no page {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_web_is_embedded_with_its_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "web/ and the embedded assets differ");
        for a in ASSETS {
            let want = match a.name.rsplit('.').next() {
                Some("html") => HTML,
                Some("js") => JS,
                Some("css") => CSS,
                other => panic!("{}: no content type for {other:?}", a.name),
            };
            assert_eq!(a.mime, want, "{}", a.name);
        }
    }

    #[test]
    fn pages_reference_only_embedded_files() {
        // Every `/web/...` URL and every relative module import in a page or script must
        // name an embedded file, or the page breaks only in a browser.
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for (i, _) in text.match_indices("/web/") {
                let rest = &text[i + 5..];
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')).unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(ASSETS.iter().any(|x| x.name == name), "{} refers to /web/{name}, which is not embedded", a.name);
            }
            for (i, _) in text.match_indices("from './") {
                let rest = &text[i + 8..];
                let name = &rest[..rest.find('\'').unwrap()];
                assert!(ASSETS.iter().any(|x| x.name == name), "{} imports ./{name}, which is not embedded", a.name);
            }
        }
    }

    #[test]
    fn unknown_files_are_404() {
        assert_eq!(serve("agent.js").status(), StatusCode::OK);
        assert_eq!(serve("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve("nothing.js").status(), StatusCode::NOT_FOUND);
    }
}
