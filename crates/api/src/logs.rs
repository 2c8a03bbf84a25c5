//! `GET /api/logs` (admin): records from the log pipeline's R2 bucket (`LOGS`, written by the
//! tail worker) — one request's lines across every worker, or a filtered time range. The
//! rules and bounds are `gateway::logs`; this module lists only the range's partitions.

use gateway::logs::{may_overlap, parse_query, partitions, Page, META_MAX_TS, META_MIN_TS};
use serde_json::json;
use worker::{Bucket, Env, Include, Method, Request, Response};

use crate::config;
use crate::context::RequestCtx;
use crate::error::{json_response, ApiError};

const BUCKET: &str = "LOGS";
/// A page reads at most this many objects (`LOGS_QUERY_MAX_OBJECTS`)...
const DEFAULT_MAX_OBJECTS: usize = 50;
/// ... and this many bytes of them (`LOGS_QUERY_MAX_BYTES`, 16 MiB)...
const DEFAULT_MAX_BYTES: usize = 16 << 20;
/// ... and makes at most this many list calls.
const MAX_LIST_CALLS: usize = 20;

pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    if path != "/" {
        return Err(ApiError::NotFound("no such logs resource".into()));
    }
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed);
    }
    let url = req.url()?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let now = js_sys::Date::now().max(0.0) as u64;
    let query = parse_query(&pairs, now).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let bucket = env
        .bucket(BUCKET)
        .map_err(|_| ApiError::ServiceUnavailable("the log bucket is not configured".into()))?;
    let budget = |name: &str, default: usize| {
        config::var(env, name)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let mut page = Page::new(
        query.limit,
        budget("LOGS_QUERY_MAX_OBJECTS", DEFAULT_MAX_OBJECTS),
        budget("LOGS_QUERY_MAX_BYTES", DEFAULT_MAX_BYTES),
    );
    let failed = |e: worker::Error| ApiError::Internal(format!("log bucket: {e}"));
    let mut list_calls = 0;
    let resume = query.cursor.clone();
    'partitions: for partition in partitions(query.from_ms, query.to_ms) {
        let mut start_after = None;
        if let Some(cursor) = &resume {
            if partition.as_str() < cursor.partition() {
                continue;
            }
            if partition == cursor.partition() {
                if cursor.skip > 0 {
                    if let Some(body) = read(&bucket, &cursor.key).await.map_err(failed)? {
                        page.take(&cursor.key, &body, cursor.skip, &query);
                    }
                }
                start_after = Some(cursor.key.clone());
            }
        }
        page.scanned.partitions += 1;
        let prefix = query.list_prefix(&partition);
        let mut list_cursor: Option<String> = None;
        loop {
            if !page.open() {
                break 'partitions;
            }
            if list_calls == MAX_LIST_CALLS {
                // Resume after the last object seen, or at this partition's start (every key
                // in it sorts after the bare prefix).
                page.stop_after(start_after.as_deref().unwrap_or(&partition));
                break 'partitions;
            }
            list_calls += 1;
            let mut list = bucket
                .list()
                .prefix(prefix.clone())
                .include(vec![Include::CustomMetadata]);
            if let Some(c) = &list_cursor {
                list = list.cursor(c.clone());
            } else if let Some(after) = &start_after {
                list = list.start_after(after.clone());
            }
            let listing = list.execute().await.map_err(failed)?;
            for object in listing.objects() {
                if !page.open() {
                    break 'partitions;
                }
                let key = object.key();
                let meta = object.custom_metadata().unwrap_or_default();
                let bound = |name: &str| meta.get(name).and_then(|v| v.parse::<u64>().ok());
                if may_overlap(
                    bound(META_MIN_TS),
                    bound(META_MAX_TS),
                    query.from_ms,
                    query.to_ms,
                ) {
                    if let Some(body) = read(&bucket, &key).await.map_err(failed)? {
                        page.take(&key, &body, 0, &query);
                    }
                }
                start_after = Some(key);
            }
            match listing.cursor().filter(|_| listing.truncated()) {
                Some(c) => list_cursor = Some(c),
                None => break,
            }
        }
    }
    let page = page.sorted();
    let body = json!({
        "items": page.items,
        "nextCursor": page.next.as_ref().map(|c| c.encode()),
        "range": {"from": query.from_ms, "to": query.to_ms},
        "scanned": {
            "partitions": page.scanned.partitions,
            "objects": page.scanned.objects,
            "bytes": page.scanned.bytes,
            "unreadableLines": page.scanned.unreadable_lines,
            "listCalls": list_calls,
        },
        "requestId": rc.request_id,
    });
    let mut response = json_response(200, &body);
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

async fn read(bucket: &Bucket, key: &str) -> worker::Result<Option<String>> {
    let Some(object) = bucket.get(key).execute().await? else {
        return Ok(None);
    };
    match object.body() {
        Some(body) => body.text().await.map(Some),
        None => Ok(None),
    }
}
