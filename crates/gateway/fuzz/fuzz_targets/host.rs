//! `Host` normalisation and the router behind it. Properties: normalising is idempotent and
//! keeps the kind; a normal host is lower-case, port-free, without a trailing dot, at most
//! 253 bytes; routing any normal host and path never panics and names a known strategy.
#![no_main]

use gateway::host::normalize_host;
use gateway::router::{route, RouterConfig};
use gateway::routes::DomainRoutes;
use gateway_fuzz::{fields, text};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn table() -> &'static DomainRoutes {
    static TABLE: OnceLock<DomainRoutes> = OnceLock::new();
    TABLE.get_or_init(|| {
        DomainRoutes::parse(include_bytes!("../../../../assets/domain-routes.json"))
            .expect("the seed routing table parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let [raw_host, path] = fields::<2>(data, b'\n');
    let raw_host = text(raw_host);
    let Ok(host) = normalize_host(&raw_host) else {
        return;
    };
    let again = normalize_host(host.as_str());
    assert_eq!(
        again.as_ref(),
        Ok(&host),
        "normalise is not idempotent for {raw_host:?}"
    );
    let name = host.as_str();
    assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
    assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
    assert!(!name.ends_with('.'), "{name:?}");
    if !host.is_ip() {
        assert!(!name.contains(':'), "{name:?}");
    }
    let path = text(path);
    let path = if path.starts_with('/') {
        path.into_owned()
    } else {
        format!("/{path}")
    };
    let cfg = RouterConfig::default();
    let routed = route(&host, &path, &cfg, Some(table()));
    let _ = (routed.strategy(), routed.target_name());
    let _ = route(&host, &path, &cfg, None);
});
