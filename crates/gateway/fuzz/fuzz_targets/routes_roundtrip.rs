//! The route file's one serde path, both ways. For any input: parsing it as a file, as a
//! snapshot, or as one entry never panics. An accepted file written back in the file's
//! format (serde_json of its routes) parses to the same table, and so does its snapshot
//! (whose own snapshot is the same text). One entry's rules agree with themselves: it
//! compiles exactly when it has no problem, and the first problem is the one compiling
//! reports.
#![no_main]

use gateway::routes::{DomainRoutes, RouteEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = DomainRoutes::from_snapshot(text);
    }
    if let Ok(entry) = serde_json::from_slice::<RouteEntry>(data) {
        let problems = entry.problems();
        match entry.compile() {
            Ok(route) => {
                assert!(problems.is_empty(), "compiled with problems {problems:?}");
                // The route written back is an entry that compiles to itself.
                let text = serde_json::to_string(&route).expect("a route serialises");
                let again: RouteEntry = serde_json::from_str(&text).expect("and reads back");
                assert_eq!(again.compile().ok().as_ref(), Some(&route), "{text}");
            }
            Err((_, reason)) => assert_eq!(
                problems.first().map(|(_, r)| r),
                Some(&reason),
                "compile and problems disagree"
            ),
        }
    }
    let Ok(table) = DomainRoutes::parse(data) else {
        return;
    };
    let routes: Vec<_> = table.iter().collect();
    let written = serde_json::to_string(&routes).expect("a table serialises");
    match DomainRoutes::parse(written.as_bytes()) {
        Ok(again) => assert!(again == table, "written back differently: {written}"),
        Err(e) => panic!("written back and refused: {e}\n{written}"),
    }
    let snapshot = table.snapshot();
    match DomainRoutes::from_snapshot(&snapshot) {
        Ok(again) => {
            assert!(again == table, "the snapshot loads differently: {snapshot}");
            assert_eq!(again.snapshot(), snapshot, "the snapshot is not stable");
            for r in table.iter() {
                assert_eq!(again.lookup(&r.domain), table.lookup(&r.domain));
            }
        }
        Err(e) => panic!("own snapshot refused: {e}\n{snapshot}"),
    }
});
