//! Document names and list queries (`documents::validate_collection`, `validate_id`,
//! `percent_decode`, cursors, `parse_list_query`). Properties: a name the api accepts from a
//! path (each segment percent-decoded, then validated, as `crates/api/src/adapters/db.rs`
//! does) is accepted by db as it arrives over RPC, is its own percent-encoding (so the
//! `Location` the api builds names the same document), and survives a list cursor both ways;
//! any cursor that decodes names a valid id; a list query the api accepts
//! is accepted by db as the api passes it on, with the same limit and position.
#![no_main]

use gateway::documents::{
    decode_cursor, encode_cursor, encode_cursor_any_owner, list_opts, list_params,
    parse_list_query, percent_decode, validate_collection, validate_id, Cursor, MAX_LIMIT,
};
use gateway_fuzz::{fields, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [path, query, cursor] = fields::<3>(data, b'\n');
    let path = text(path);

    // The api's side: `/{collection}` or `/{collection}/{id}`, decoded, then validated.
    let mut segments = path.strip_prefix('/').unwrap_or(&path).split('/');
    let collection = percent_decode(segments.next().unwrap_or(""), false);
    let id = segments.next().map(|s| percent_decode(s, false));
    let accepted = segments.next().is_none()
        && collection
            .as_deref()
            .is_some_and(|c| validate_collection(c).is_ok())
        && id
            .as_ref()
            .is_none_or(|i| i.as_deref().is_some_and(|i| validate_id(i).is_ok()));
    if accepted {
        let collection = collection.unwrap_or_default();
        // db's side: the same strings, as JS strings over RPC (a UTF-8 round trip).
        let over_rpc = String::from_utf16(&collection.encode_utf16().collect::<Vec<_>>()).ok();
        assert!(over_rpc
            .as_deref()
            .is_some_and(|c| validate_collection(c).is_ok()));
        assert_eq!(
            percent_decode(&collection, false).as_deref(),
            Some(collection.as_str())
        );
        if let Some(Some(id)) = id {
            assert!(validate_id(&id).is_ok());
            assert_eq!(
                percent_decode(&id, false).as_deref(),
                Some(id.as_str()),
                "{id:?}"
            );
            assert!(id != "." && id != ".." && !id.contains('/'), "{id:?}");
            assert_eq!(
                decode_cursor(&encode_cursor(&id)),
                Ok(Cursor {
                    id: id.clone(),
                    owner: None
                })
            );
            let owned = decode_cursor(&encode_cursor_any_owner(&id, &collection));
            assert_eq!(
                owned,
                Ok(Cursor {
                    id,
                    owner: Some(collection)
                })
            );
        }
    }

    // A list query the api accepts (and passes on as limit + opaque cursor) db accepts too.
    let query = text(query);
    if let Ok(opts) = parse_list_query(Some(&query)) {
        assert!(
            (2..=MAX_LIMIT + 1).contains(&opts.fetch_limit()),
            "{}",
            opts.fetch_limit()
        );
        let _ = (opts.after_id(), opts.after_owner());
        let (limit, cursor) =
            list_params(Some(&query)).expect("list_params agrees with parse_list_query");
        let at_db = list_opts(Some(&serde_json::json!(limit)), cursor.as_deref());
        assert_eq!(
            at_db.as_ref().ok(),
            Some(&opts),
            "db refused what the api passed on: {at_db:?}"
        );
    } else {
        assert!(list_params(Some(&query)).is_err());
    }
    if let Ok(c) = decode_cursor(&text(cursor)) {
        assert!(validate_id(&c.id).is_ok(), "{c:?}");
    }
});
