//! The service catalogue `getServices` answers: the registry's rows (those with a binding),
//! the methods the proxy forwards for each, and whether this worker has the binding.
//! RPC stubs cannot be introspected reliably, so both lists come from code, not from probing.

use gateway::jsonrpc::proxy_methods;
use gateway::registry::{self, ServiceDef};
use rpc::do_::ServiceInfo;

/// The proxy's own registry name: always available, it is the worker answering.
pub const SELF: &str = "do";

fn info(def: &ServiceDef, binding: &str, has_binding: &dyn Fn(&str) -> bool) -> ServiceInfo {
    ServiceInfo {
        name: def.name.to_string(),
        binding: binding.to_string(),
        description: def.description.to_string(),
        available: def.name == SELF || has_binding(binding),
        methods: proxy_methods(def.name)
            .into_iter()
            .map(str::to_string)
            .collect(),
    }
}

/// Every RPC-reachable service, in registry order. Built-ins (no binding) are the api's
/// own and are left out.
pub fn services(has_binding: &dyn Fn(&str) -> bool) -> Vec<ServiceInfo> {
    registry::SERVICES
        .iter()
        .filter_map(|def| def.binding.map(|b| info(def, b, has_binding)))
        .collect()
}

/// One service by exact registry name; `None` when unknown or built in.
pub fn service(name: &str, has_binding: &dyn Fn(&str) -> bool) -> Option<ServiceInfo> {
    let def = registry::service(name)?;
    def.binding.map(|b| info(def, b, has_binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_db_and_auth(binding: &str) -> bool {
        matches!(binding, "DB_SERVICE" | "AUTH_SERVICE")
    }

    #[test]
    fn lists_bound_registry_services_with_availability() {
        let all = services(&only_db_and_auth);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"db"));
        assert!(!names.contains(&"waitlist"));
        let builtins = registry::SERVICES.iter().filter(|s| s.binding.is_none());
        assert_eq!(names.len(), registry::SERVICES.len() - builtins.count());
        let available: Vec<&str> = all
            .iter()
            .filter(|s| s.available)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(available, ["db", "auth", "do"]);
        let schedule = service("schedule", &only_db_and_auth).expect("registered");
        assert_eq!(schedule.binding, "SCHEDULE_SERVICE");
        assert!(!schedule.available);
        assert_eq!(schedule.methods, ["health"]);
        assert!(service("schedule", &|b| b == "SCHEDULE_SERVICE").is_some_and(|s| s.available));
    }

    #[test]
    fn unknown_and_builtin_names_are_none() {
        for name in ["waitlist", "nope", "", "DB", "database"] {
            assert!(service(name, &only_db_and_auth).is_none(), "{name}");
        }
    }
}
