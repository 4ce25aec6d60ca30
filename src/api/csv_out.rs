//! CSV answers: small reports in one piece, large exports streamed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::err;

/// Rows as a CSV document with a header line.
pub fn csv_response<T: Serialize>(rows: &[T], filename: &str) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        if let Err(e) = w.serialize(r) {
            return err(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("csv: {e}"), None).into_response();
        }
    }
    match w.into_inner() {
        Ok(bytes) => attachment(Body::from(bytes), filename),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("csv: {e}"), None).into_response(),
    }
}

pub fn attachment(body: Body, filename: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))],
        body,
    )
        .into_response()
}

/// A response body fed by a channel, so an export is written page by page.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(http_body::Frame::data)))
    }
}

/// A request body as a blocking [`io::Read`], for the CSV importer's reader thread.
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
    cur: Bytes,
}

impl BodyReader {
    /// Pump `body` from a task into a small bounded channel (back-pressure keeps memory flat).
    pub fn spawn(mut body: Body) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
                let item = match frame {
                    None => break,
                    Some(Ok(f)) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue, // trailers
                    },
                    Some(Err(e)) => Err(io::Error::other(e.to_string())),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        BodyReader { rx, cur: Bytes::new() }
    }
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            // Runs on the importer's blocking thread, where blocking is allowed.
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}
