//! Waitlist input (`waitlist::normalize_email`, `form_or_json_email`, `check_domain` with its
//! punycode decoding and confusables skeleton, `same_origin`, `prefers`, `parse_admin_path`).
//! Properties: normalising an email is idempotent and yields one `@` within 254 bytes; a
//! sign-up body's email is already normal; a host that gets a page renders with its name
//! escaped; the platform's own hosts are never refused as confusable with themselves.
#![no_main]

use gateway::host::normalize_host;
use gateway::waitlist::{
    check_domain, form_or_json_email, html_escape, normalize_email, parse_admin_path,
    parse_denylist, platform_hosts, prefers, render_page, same_origin, Refusal,
};
use gateway_fuzz::{fields, header, text};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn platform() -> &'static Vec<String> {
    static HOSTS: OnceLock<Vec<String>> = OnceLock::new();
    HOSTS.get_or_init(|| {
        let api_hosts = ["api.do", "localhost", "127.0.0.1"].map(String::from);
        platform_hosts(&api_hosts, "apis.do", "do")
    })
}

fuzz_target!(|data: &[u8]| {
    let [email, content_type, body, host, origin] = fields::<5>(data, b'\n');
    if let Ok(n) = normalize_email(&text(email)) {
        assert_eq!(
            normalize_email(&n).as_ref(),
            Ok(&n),
            "normalising is not idempotent"
        );
        assert!(n.len() <= 254 && n.matches('@').count() == 1, "{n:?}");
    }
    if let Ok(n) = form_or_json_email(header(content_type).as_deref(), body) {
        assert_eq!(
            normalize_email(&n).as_ref(),
            Ok(&n),
            "a sign-up email is not normal"
        );
    }

    let hosts: Vec<&str> = platform().iter().map(String::as_str).collect();
    let denylist = parse_denylist(Some("blocked.example, *.evil.do"));
    if let Ok(h) = normalize_host(&text(host)) {
        match check_domain(h.as_str(), h.is_ip(), &hosts, &denylist) {
            Ok(()) => {
                let page = render_page(h.as_str(), "apis.do");
                assert!(page.contains(&html_escape(h.as_str())));
            }
            Err(Refusal::Confusable) => assert!(
                !hosts.contains(&h.as_str()),
                "{} is the platform's own",
                h.as_str()
            ),
            Err(_) => {}
        }
        let origin = text(origin);
        if same_origin(&origin, h.as_str()) {
            assert!(origin.trim().starts_with("http"));
        }
        let _ = parse_admin_path(&format!("/{}", h.as_str()));
    }
    let _ = prefers(header(origin).as_deref(), "text/html", "application/json");
    let _ = parse_admin_path(&text(host));
});
