//! The db HTTP adapter (`/api/db/...` on API hosts, host `db.do`): REST on documents mapped to
//! the db service's RPC methods through `DbClient`, and db's typed replies mapped back to
//! statuses, `ETag` and `Location`. Names and bodies are checked here too, so bad input is
//! answered without a round trip and a body over 1 MiB is refused before it is read whole.

use gateway::documents::{
    etag, list_params, owner_param, parse_body, percent_decode, validate_collection, validate_id,
    DocError, MAX_BODY_BYTES,
};
use gateway::problem::Problem;
use rpc::db::{DbError, Document, ListOpts, PutMode, PutOpts, WriteOpts};
use rpc::DbClient;
use worker::{Env, Method, Request, Response};

use crate::context::RequestCtx;
use crate::error::{json_response, ApiError};

/// Media types a PATCH body may have: both mean RFC 7396 merge patch here.
const PATCH_TYPES: [&str; 2] = ["application/merge-patch+json", "application/json"];

/// What the path names.
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Collection(String),
    Document { collection: String, id: String },
}

pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    let resource = resource(path)?;
    let method = req.method();
    let allowed = match &resource {
        Resource::Collection(_) => "GET, POST",
        Resource::Document { .. } => "GET, PUT, PATCH, DELETE",
    };
    let db = DbClient::from_env(env)?;
    let mut ctx = rc.rpc_ctx();
    // An admin may name whose copy of an id (or whose collection) a request means.
    ctx.owner = owner_param(req.url()?.query()).map_err(refused_here)?;
    if ctx.owner.is_some() && !rc.identity.as_ref().is_some_and(|i| i.is_admin()) {
        return Err(ApiError::Forbidden(
            "only an admin may name an owner".into(),
        ));
    }
    let if_match = req.headers().get("if-match")?;
    match (resource, method) {
        (Resource::Collection(collection), Method::Get) => {
            let query = req.url()?.query().map(str::to_string);
            let (limit, cursor) = list_params(query.as_deref()).map_err(refused_here)?;
            let opts = ListOpts {
                limit: Some(limit),
                cursor,
            };
            let page = db.list(&ctx, &collection, &opts).await?.map_err(refused)?;
            Ok(no_store(json_response(200, &page)))
        }
        (Resource::Collection(collection), Method::Post) => {
            let data = parse_body(&read_body(req).await?, None).map_err(refused_here)?;
            let written = db
                .create(&ctx, &collection, &data)
                .await?
                .map_err(refused)?;
            let location = location(rc, path, &collection, &written.document);
            created_response(&written.document, location)
        }
        (Resource::Document { collection, id }, Method::Get) => {
            let document = db.get(&ctx, &collection, &id).await?.map_err(refused)?;
            Ok(document_response(200, &document))
        }
        (Resource::Document { collection, id }, Method::Put) => {
            let data = parse_body(&read_body(req).await?, Some(&id)).map_err(refused_here)?;
            // `If-None-Match: *` is HTTP's "create, never replace": db's create mode, whose
            // "already exists" (409) is this precondition failing (412).
            let create_only = if_match.is_none()
                && req
                    .headers()
                    .get("if-none-match")?
                    .is_some_and(|v| v.trim() == "*");
            let opts = PutOpts {
                if_match,
                mode: create_only.then_some(PutMode::Create),
            };
            let written = db
                .put(&ctx, &collection, Some(&id), &data, &opts)
                .await?
                .map_err(|e| match e.status {
                    409 if create_only => refused_here(DocError::PreconditionFailed),
                    _ => refused(e),
                })?;
            if written.created {
                let location = location(rc, path, &collection, &written.document);
                created_response(&written.document, location)
            } else {
                Ok(document_response(200, &written.document))
            }
        }
        (Resource::Document { collection, id }, Method::Patch) => {
            if let Some(refusal) = unsupported_patch_type(req, rc)? {
                return Ok(refusal);
            }
            let patch = parse_body(&read_body(req).await?, Some(&id)).map_err(refused_here)?;
            let opts = WriteOpts { if_match };
            let document = db
                .patch(&ctx, &collection, &id, &patch, &opts)
                .await?
                .map_err(refused)?;
            Ok(document_response(200, &document))
        }
        (Resource::Document { collection, id }, Method::Delete) => {
            let opts = WriteOpts { if_match };
            db.delete(&ctx, &collection, &id, &opts)
                .await?
                .map_err(refused)?;
            Ok(no_store(Response::empty()?.with_status(204)))
        }
        _ => {
            let mut response = ApiError::MethodNotAllowed.to_response(&rc.request_id);
            response.headers_mut().set("Allow", allowed)?;
            Ok(response)
        }
    }
}

/// `/{collection}` or `/{collection}/{id}`, each segment percent-decoded and then validated
/// (so `%2e%2e` is judged as `..`). Anything else is 400.
fn resource(path: &str) -> Result<Resource, ApiError> {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let collection = decode_segment(segments.next().unwrap_or(""))?;
    let id = segments.next().map(decode_segment).transpose()?;
    if segments.next().is_some() {
        return Err(ApiError::BadRequest(
            "document paths are /{collection} and /{collection}/{id}".into(),
        ));
    }
    validate_collection(&collection).map_err(refused_here)?;
    match id {
        None => Ok(Resource::Collection(collection)),
        Some(id) => {
            validate_id(&id).map_err(refused_here)?;
            Ok(Resource::Document { collection, id })
        }
    }
}

/// The body, refusing more than [`MAX_BODY_BYTES`] with the documents' own 413.
async fn read_body(req: &Request) -> Result<Vec<u8>, ApiError> {
    crate::body::read_capped(req, MAX_BODY_BYTES)
        .await?
        .ok_or_else(|| refused_here(DocError::TooLarge))
}

fn decode_segment(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment, false)
        .ok_or_else(|| ApiError::BadRequest("the path is not valid percent-encoded UTF-8".into()))
}

/// PATCH means RFC 7396 here; other patch formats (JSON Patch) must not be misread as one:
/// they get 415 with `Accept-Patch` naming what is accepted (RFC 5789 §3.1).
fn unsupported_patch_type(req: &Request, rc: &RequestCtx) -> Result<Option<Response>, ApiError> {
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if PATCH_TYPES.contains(&media_type.as_str()) {
        return Ok(None);
    }
    let problem = Problem::new(
        415,
        "PATCH takes a JSON merge patch: Content-Type application/merge-patch+json or application/json",
    );
    let mut response = ApiError::Problem(Box::new(problem)).to_response(&rc.request_id);
    response
        .headers_mut()
        .set("Accept-Patch", &PATCH_TYPES.join(", "))?;
    Ok(Some(response))
}

/// A check this adapter made itself (same rules db applies).
fn refused_here(e: DocError) -> ApiError {
    ApiError::Problem(Box::new(Problem::new(e.status(), e.to_string())))
}

/// db's typed refusal, with its status. Only client-error statuses are taken as given; anything
/// else would be a db bug and is not passed on as if it were the client's fault.
fn refused(e: DbError) -> ApiError {
    if (400..500).contains(&e.status) {
        ApiError::Problem(Box::new(Problem::new(e.status, e.detail)))
    } else {
        ApiError::Internal(format!("db answered status {} ({})", e.status, e.code))
    }
}

/// Where a new document lives, on the host and prefix this request used: the request path
/// minus the adapter's own path is `/api/db` on API hosts and empty on `db.do`.
fn location(rc: &RequestCtx, path: &str, collection: &str, document: &Document) -> String {
    let prefix = rc.path.strip_suffix(path).unwrap_or("");
    let id = document.get("id").and_then(|v| v.as_str()).unwrap_or("");
    format!("{prefix}/{collection}/{id}")
}

fn document_response(status: u16, document: &Document) -> Response {
    let mut response = no_store(json_response(status, document));
    if let Some(version) = document.get("_version").and_then(|v| v.as_i64()) {
        let _ = response.headers_mut().set("ETag", &etag(version));
    }
    response
}

fn created_response(document: &Document, location: String) -> Result<Response, ApiError> {
    let mut response = document_response(201, document);
    response.headers_mut().set("Location", &location)?;
    Ok(response)
}

/// Documents are private to their owner: never stored by a shared or browser cache.
fn no_store(mut response: Response) -> Response {
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(collection: &str, id: &str) -> Resource {
        Resource::Document {
            collection: collection.into(),
            id: id.into(),
        }
    }

    #[test]
    fn resources() {
        assert_eq!(
            resource("/notes").unwrap(),
            Resource::Collection("notes".into())
        );
        assert_eq!(resource("/notes/a.b:c").unwrap(), doc("notes", "a.b:c"));
        assert_eq!(resource("/notes/a%3Ab").unwrap(), doc("notes", "a:b"));
        for bad in [
            "/",
            "",
            "/notes/",
            "/notes/a/b",
            "/no%2Fte/x",
            "/notes/%2e%2e",
            "/notes/..",
            "/x'%3B%20DROP%20TABLE%20documents/1",
            "/notes/%zz",
            "/notes/%ff",
        ] {
            let status = resource(bad).map(|_| ()).map_err(|e| e.problem().status);
            assert_eq!(status, Err(400), "{bad}");
        }
    }
}
