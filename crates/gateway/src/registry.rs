//! The one service registry (CONTRACT "The service registry"): every internal service, its
//! binding, default access and how the api reaches it. Routing, access, `do` and
//! `getServices` all read this table; adding a service is one row.

use crate::access::AccessLevel;
use serde::Serialize;

/// How the api worker reaches a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// RPC-only service: the api owns an HTTP adapter and calls its RPC methods.
    Adapter,
    /// Still speaks HTTP: the request is forwarded with `fetch` through its binding.
    Forward,
    /// Answered inside the api worker itself.
    Builtin,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Adapter => "adapter",
            ServiceKind::Forward => "forward",
            ServiceKind::Builtin => "builtin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceDef {
    pub name: &'static str,
    /// The service binding's name in the api worker's env; `None` for built-ins.
    pub binding: Option<&'static str>,
    /// Default access on `/api/{name}/*` and `{name}.apis.do`.
    pub access: AccessLevel,
    pub kind: ServiceKind,
    pub description: &'static str,
}

const fn def(
    name: &'static str,
    binding: Option<&'static str>,
    access: AccessLevel,
    kind: ServiceKind,
    description: &'static str,
) -> ServiceDef {
    ServiceDef {
        name,
        binding,
        access,
        kind,
        description,
    }
}

use AccessLevel::{Admin, Anon, Authenticated};
use ServiceKind::{Adapter, Builtin, Forward};

/// The contract's rows, in the contract's order.
pub static SERVICES: &[ServiceDef] = &[
    def(
        "db",
        Some("DB_SERVICE"),
        Authenticated,
        Adapter,
        "documents (RPC, HTTP adapter)",
    ),
    // auth is anon at the door: signup/login are public and its adapter checks the rest.
    def(
        "auth",
        Some("AUTH_SERVICE"),
        Anon,
        Adapter,
        "identity (RPC, HTTP adapter)",
    ),
    def(
        "do",
        Some("DO_SERVICE"),
        Authenticated,
        Adapter,
        "RPC proxy (RPC, HTTP adapter)",
    ),
    def(
        "schedule",
        Some("SCHEDULE_SERVICE"),
        Admin,
        Forward,
        "cron jobs and scheduled tasks",
    ),
    def(
        "webhooks",
        Some("WEBHOOKS_SERVICE"),
        Anon,
        Forward,
        "external webhooks",
    ),
    def(
        "email",
        Some("EMAIL_SERVICE"),
        Authenticated,
        Forward,
        "transactional email",
    ),
    def(
        "queue",
        Some("QUEUE_SERVICE"),
        Admin,
        Forward,
        "message queues",
    ),
    def(
        "ai",
        Some("AI_SERVICE"),
        Authenticated,
        Forward,
        "AI generation",
    ),
    def(
        "embeddings",
        Some("EMBEDDINGS_SERVICE"),
        Authenticated,
        Forward,
        "text embeddings",
    ),
    def(
        "agents",
        Some("AGENTS_SERVICE"),
        Authenticated,
        Forward,
        "AI agents",
    ),
    def(
        "workflows",
        Some("WORKFLOWS_SERVICE"),
        Authenticated,
        Forward,
        "workflow orchestration",
    ),
    def(
        "business",
        Some("BUSINESS_SERVICE"),
        Authenticated,
        Forward,
        "business logic",
    ),
    def(
        "stripe",
        Some("STRIPE_SERVICE"),
        Authenticated,
        Forward,
        "Stripe integration",
    ),
    def(
        "github",
        Some("GITHUB_SERVICE"),
        Authenticated,
        Forward,
        "GitHub integration",
    ),
    def(
        "mcp",
        Some("MCP_SERVICE"),
        Anon,
        Forward,
        "Model Context Protocol (also `/mcp/*`)",
    ),
    def(
        "waitlist",
        None,
        Anon,
        Builtin,
        "waitlist (also `/waitlist/*`)",
    ),
    def(
        "logs",
        None,
        Admin,
        Builtin,
        "request logs from the log pipeline in R2 (`/api/logs`)",
    ),
    // Runtime domain routes and their audit (CONTRACT "Operating the platform").
    def(
        "routes",
        None,
        Admin,
        Builtin,
        "runtime domain routes and their audit",
    ),
    // The console's Overview numbers, from Analytics Engine.
    def(
        "metrics",
        None,
        Admin,
        Builtin,
        "request metrics from Analytics Engine",
    ),
    // The operators' console's static files (also `/console/*`); its data comes from the
    // admin APIs above, never from an endpoint of its own.
    def(
        "console",
        None,
        Anon,
        Builtin,
        "the operators' web console (also `/console/*`)",
    ),
];

/// Subdomain aliases (`{alias}.apis.do`, `/api/{alias}/...`) and the name they stand for.
/// The contract lists `agents → agent`, but its own table registers `agents`; the registry
/// name is authoritative, so the alias runs `agent → agents`. `fn` is not registered, so
/// `functions` resolves to a name that then falls through.
pub static ALIASES: &[(&str, &str)] =
    &[("database", "db"), ("agent", "agents"), ("functions", "fn")];

/// The registry row named exactly `name` (no alias resolution).
pub fn service(name: &str) -> Option<&'static ServiceDef> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The name an alias stands for, or `name` itself.
pub fn resolve_alias(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, target)| target)
}

/// Whether `name` belongs to the platform's internal services (a registry name, an alias or
/// an alias target), so that it is never handed to a user worker.
pub fn is_internal_name(name: &str) -> bool {
    service(name).is_some() || ALIASES.iter().any(|(a, t)| *a == name || *t == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_contract_rows_in_order() {
        let names: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "db",
                "auth",
                "do",
                "schedule",
                "webhooks",
                "email",
                "queue",
                "ai",
                "embeddings",
                "agents",
                "workflows",
                "business",
                "stripe",
                "github",
                "mcp",
                "waitlist",
                "logs",
                "routes",
                "metrics",
                "console"
            ]
        );
    }

    #[test]
    fn rows_match_the_contract() {
        let cases = [
            ("db", Some("DB_SERVICE"), Authenticated, Adapter),
            ("auth", Some("AUTH_SERVICE"), Anon, Adapter),
            ("do", Some("DO_SERVICE"), Authenticated, Adapter),
            ("schedule", Some("SCHEDULE_SERVICE"), Admin, Forward),
            ("webhooks", Some("WEBHOOKS_SERVICE"), Anon, Forward),
            ("email", Some("EMAIL_SERVICE"), Authenticated, Forward),
            ("queue", Some("QUEUE_SERVICE"), Admin, Forward),
            ("ai", Some("AI_SERVICE"), Authenticated, Forward),
            (
                "embeddings",
                Some("EMBEDDINGS_SERVICE"),
                Authenticated,
                Forward,
            ),
            ("agents", Some("AGENTS_SERVICE"), Authenticated, Forward),
            (
                "workflows",
                Some("WORKFLOWS_SERVICE"),
                Authenticated,
                Forward,
            ),
            ("business", Some("BUSINESS_SERVICE"), Authenticated, Forward),
            ("stripe", Some("STRIPE_SERVICE"), Authenticated, Forward),
            ("github", Some("GITHUB_SERVICE"), Authenticated, Forward),
            ("mcp", Some("MCP_SERVICE"), Anon, Forward),
            ("waitlist", None, Anon, Builtin),
            ("logs", None, Admin, Builtin),
            ("routes", None, Admin, Builtin),
            ("metrics", None, Admin, Builtin),
            ("console", None, Anon, Builtin),
        ];
        for (name, binding, access, kind) in cases {
            let s = service(name);
            assert_eq!(
                s.map(|s| (s.binding, s.access, s.kind)),
                Some((binding, access, kind)),
                "{name}"
            );
        }
    }

    #[test]
    fn names_and_bindings_are_unique() {
        for (i, a) in SERVICES.iter().enumerate() {
            for b in &SERVICES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.binding.is_none() || a.binding != b.binding, "{}", a.name);
            }
        }
    }

    #[test]
    fn lookup_is_exact() {
        for name in ["DB", "db ", "", "database", "agent", "fn"] {
            assert!(service(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn aliases() {
        let cases = [
            ("database", "db"),
            ("agent", "agents"),
            ("agents", "agents"),
            ("functions", "fn"),
            ("db", "db"),
            ("nope", "nope"),
        ];
        for (name, want) in cases {
            assert_eq!(resolve_alias(name), want, "{name}");
        }
        assert!(service(resolve_alias("functions")).is_none());
        // Every alias key is unregistered, so an alias never shadows a real row.
        for (alias, _) in ALIASES {
            assert!(service(alias).is_none(), "{alias}");
        }
    }

    #[test]
    fn internal_names() {
        for name in ["db", "waitlist", "database", "agent", "functions", "fn"] {
            assert!(is_internal_name(name), "{name}");
        }
        for name in ["myapp", "shop", "", "dbx"] {
            assert!(!is_internal_name(name), "{name}");
        }
    }
}
